"""The SE-ResNet-20 training step on each Numba threading layer, each in its own process.

sescratch picks the layer when its Numba kernels are imported (``sescratch/kernels/numba/__init__.py``:
tbb if installed, else OpenMP with short spins, else workqueue). This benchmark times one
training step (forward, loss, backward, SGD; median of ``--repeats`` after 3 warm-ups) on every
layer that loads, in a fresh process without PyTorch: "omp-short-spins" is what sescratch starts
without tbb, "omp" OpenMP's default long spins; "omp-shared" is OpenMP when PyTorch was
imported first and Numba binds to PyTorch's OpenMP runtime and its long spins (sescratch itself
never picks this), "torch first" what sescratch starts when PyTorch was imported first (as in the
other benchmarks: without tbb a private OpenMP runtime with short spins). Each row also gives the
launch cost of one small parallel kernel.

    python benchmarks/bench_threading.py                      # batch 64 of 1x28x28 (the Fashion-MNIST recipe)
    python benchmarks/bench_threading.py --batch 128 --shape 3,32,32
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, sys, time
import numpy as np
if os.environ.pop("BENCH_TORCH_FIRST", None):
    import torch  # noqa: F401
import numba
import sescratch.kernels.numba  # noqa: F401  (starts the pool)
from sescratch import backend, models
from sescratch.kernels.numba.elementwise import _relu as parallel_relu
from sescratch.ops import softmax_cross_entropy
from sescratch.train import SGD

batch, shape, repeats = int(sys.argv[1]), tuple(map(int, sys.argv[2].split(","))), int(sys.argv[3])
backend.use("numba")
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, *shape)).astype(np.float32)
y = rng.integers(0, 10, batch)
model = models.create("se_resnet20", num_classes=10, in_channels=shape[0], seed=0)
opt = SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def step():
    _, dlogits = softmax_cross_entropy(model(x), y)
    opt.zero_grad()
    model.backward(dlogits)
    opt.step()


small, out = np.zeros(128, dtype=np.float32), np.empty(128, dtype=np.float32)
launch = []
for _ in range(500):  # the parallel loop itself: relu_forward runs arrays this small on the calling thread
    t0 = time.perf_counter()
    parallel_relu(small, out)
    launch.append(time.perf_counter() - t0)
for _ in range(3):
    step()
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
print(json.dumps({"layer": numba.threading_layer(), "step_ms": 1e3 * float(np.median(times)),
                  "launch_us": 1e6 * float(np.median(launch))}))
"""


def numba_layer() -> str:
    """The threading layer sescratch's Numba kernels run on in this process (started when they are
    imported: see sescratch/kernels/numba/__init__.py)."""
    import numba

    import sescratch.kernels.numba  # noqa: F401  (starts the pool)

    try:
        return numba.threading_layer()
    except ValueError:  # NUMBA_THREADING_LAYER set: the layer starts at the first kernel
        return numba.config.THREADING_LAYER


def run_one(layer: str, args) -> dict:
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    if layer == "omp-shared":
        env.update(NUMBA_THREADING_LAYER="omp", BENCH_TORCH_FIRST="1")
    elif layer == "torch first":
        env["BENCH_TORCH_FIRST"] = "1"
    elif layer == "omp-short-spins":  # what sescratch starts when tbb is not installed
        env.update(NUMBA_THREADING_LAYER="omp", GOMP_SPINCOUNT="1000")
    elif layer != "sescratch default":
        env["NUMBA_THREADING_LAYER"] = layer
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.batch), args.shape, str(args.repeats)],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--shape", default="1,28,28", help="C,H,W of the images (default 1,28,28)")
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    print(f"SE-ResNet-20 training step, batch {args.batch} of {args.shape}, float32, median of {args.repeats}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'layer':<18} {'runs on':<10} {'step ms':>8} {'launch us':>10}")
    for layer in ("sescratch default", "torch first", "tbb", "omp-short-spins", "omp", "workqueue", "omp-shared"):
        r = run_one(layer, args)
        if "error" in r:
            print(f"{layer:<18} {'-':<10} not available ({r['error'][:60]})")
        else:
            print(f"{layer:<18} {r['layer']:<10} {r['step_ms']:8.1f} {r['launch_us']:10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
