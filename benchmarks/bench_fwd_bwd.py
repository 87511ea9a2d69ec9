"""Forward + backward time of whole models on the CPU (the figures asked for by the model-zoo issue).

    python benchmarks/bench_fwd_bwd.py                      # se_resnet20 (128, 3x32x32), se_resnet50 (8, 3x224x224)
    python benchmarks/bench_fwd_bwd.py se_resnet20:128:32   # NAME:BATCH:SIZE, any number of them

Times one forward, softmax cross-entropy and backward (no optimizer update) in float32 with the
current CPU kernel family (``SESCRATCH_BACKEND``), after one warm-up call; prints the median.
"""
import argparse
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


def parse_spec(spec: str) -> tuple[str, int, int, int]:
    """``NAME:BATCH:SIZE[:REPEATS]`` -> (name, batch, size, repeats), or argparse's error naming it."""
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"{spec!r}: expected NAME:BATCH:SIZE[:REPEATS]")
    name, numbers = parts[0], parts[1:]
    if name not in models.list_models():
        raise argparse.ArgumentTypeError(f"{spec!r}: unknown model {name!r}; models.list_models() has "
                                         f"{', '.join(models.list_models())}")
    try:
        batch, size, repeats = (int(v) for v in numbers + ["3"] * (4 - len(parts)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: BATCH, SIZE and REPEATS must be integers") from None
    if min(batch, size, repeats) < 1:
        raise argparse.ArgumentTypeError(f"{spec!r}: BATCH, SIZE and REPEATS must be >= 1")
    return name, batch, size, repeats


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Forward + backward time of whole models on the CPU.")
    parser.add_argument("specs", nargs="*", type=parse_spec, metavar="NAME:BATCH:SIZE[:REPEATS]",
                        help=f"models to time (default: {' '.join(DEFAULT)})")
    for spec in parser.parse_args().specs or [parse_spec(s) for s in DEFAULT]:
        measure(*spec)
