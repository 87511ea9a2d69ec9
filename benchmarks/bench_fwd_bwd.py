"""Forward + backward time of whole models on the CPU (the figures asked for by the model-zoo issue).

    python benchmarks/bench_fwd_bwd.py                      # se_resnet20 (128, 3x32x32), se_resnet50 (8, 3x224x224)
    python benchmarks/bench_fwd_bwd.py se_resnet20:128:32   # NAME:BATCH:SIZE, any number of them

Times one forward, softmax cross-entropy and backward (no optimizer update) in float32 with the
current CPU kernel family (``SESCRATCH_BACKEND``), after one warm-up call; prints the median.
"""
import sys
import time

import numpy as np

from sescratch import models
from sescratch.ops import softmax_cross_entropy

DEFAULT = ["se_resnet20:128:32:5", "se_resnet50:8:224:3"]


def measure(name: str, batch: int, size: int, reps: int) -> None:
    num_classes = 10 if size <= 64 else 1000
    model = models.create(name, num_classes=num_classes)
    model.train()
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, num_classes, batch)
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        loss, dlogits = softmax_cross_entropy(model(x), labels)
        model.zero_grad()
        model.backward(dlogits)
        times.append(time.perf_counter() - start)
    print(f"{name}, batch {batch}, 3x{size}x{size}: forward+backward median {np.median(times[1:]):.3f} s "
          f"over {reps} (first call {times[0]:.2f} s)")


if __name__ == "__main__":
    for spec in sys.argv[1:] or DEFAULT:
        name, batch, size, *reps = spec.split(":")
        measure(name, int(batch), int(size), int(reps[0]) if reps else 3)
