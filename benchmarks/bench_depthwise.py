"""Depthwise 3x3 convolution, forward + backward, sescratch (Numba) against PyTorch CPU, one process.

    python benchmarks/bench_depthwise.py             # table on stdout
    python benchmarks/bench_depthwise.py --json      # the same measurements as JSON
    python benchmarks/bench_depthwise.py --quick     # fewer repetitions (a smoke run)

The shapes are those of a CIFAR MobileNet (batch 64, 3x3 kernels, padding 1, channels 32-256 at
32x32 down to 4x4, stride 1 and the stride-2 downsamplings). Both sides run the public op with
its checks: ``sescratch.ops.conv2d_forward/backward`` with ``groups == C`` (dispatched to the
depthwise kernels) and ``torch.nn.functional.conv2d`` with autograd, float32, with the same
number of threads. The two run interleaved (ours, torch, ours, ...) so that a change of load on
a shared machine hits both alike; after warm-up rounds the minimum and the median of the timed
rounds are reported, and the ratio ours / torch of the medians (below 1: faster than PyTorch).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

try:  # PyTorch first, so that its OpenMP runtime keeps its own settings (sescratch/kernels/numba/__init__.py)
    import torch  # noqa: F401
except ImportError:
    pass

from sescratch import backend  # noqa: E402
from sescratch.ops import conv2d_backward, conv2d_forward  # noqa: E402

# (channels, height = width, stride) at batch 64
SHAPES = [(32, 32, 1), (64, 32, 2), (64, 16, 1), (128, 16, 1), (128, 16, 2), (256, 8, 1),
          (256, 8, 2), (256, 4, 1)]


def _ours(x, w, dy, stride):
    def run():
        y, cache = conv2d_forward(x, w, None, stride=stride, padding=1, groups=x.shape[1])
        conv2d_backward(dy, cache)

    return run


def _torch(torch, x, w, dy, stride):
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    dyt = torch.tensor(dy)

    def run():
        xt.grad = wt.grad = None
        torch.nn.functional.conv2d(xt, wt, None, stride, 1, 1, x.shape[1]).backward(dyt)

    return run


def measure(C, H, stride, *, batch, rounds, warmup, torch):
    rng = np.random.default_rng(C * H + stride)
    x = rng.standard_normal((batch, C, H, H)).astype(np.float32)
    w = rng.standard_normal((C, 1, 3, 3)).astype(np.float32)
    OH = (H + 2 - 3) // stride + 1
    dy = rng.standard_normal((batch, C, OH, OH)).astype(np.float32)
    runners = {"sescratch": _ours(x, w, dy, stride)}
    if torch is not None:
        runners["torch"] = _torch(torch, x, w, dy, stride)
    times = {name: [] for name in runners}
    for i in range(warmup + rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    row = {"C": C, "H": H, "stride": stride, "batch": batch}
    for name, ts in times.items():
        row[f"{name}_median_ms"] = 1e3 * statistics.median(ts)
        row[f"{name}_min_ms"] = 1e3 * min(ts)
    if torch is not None:
        row["ratio_median"] = row["sescratch_median_ms"] / row["torch_median_ms"]
        row["ratio_min"] = row["sescratch_min_ms"] / row["torch_min_ms"]
    return row


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for both Numba and PyTorch (default: all cores)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if torch is not None:
        torch.set_num_threads(args.threads)
    rounds, warmup = (3, 1) if args.quick else (15, 3)
    with backend.use("numba"):
        rows = [measure(C, H, s, batch=args.batch, rounds=rounds, warmup=warmup, torch=torch)
                for C, H, s in SHAPES]
    meta = {"cpu": _cpu_model(), "threads": args.threads, "rounds": rounds,
            "torch": None if torch is None else torch.__version__}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return
    print(f"depthwise 3x3 conv fwd+bwd, float32, batch {args.batch}, {meta['cpu']}, "
          f"{args.threads} threads, {rounds} rounds (median / min ms)")
    print(f"{'C':>4} {'HxW':>6} {'S':>2} {'sescratch':>17} {'torch':>17} {'ratio':>6}")
    for r in rows:
        ours = f"{r['sescratch_median_ms']:8.2f} /{r['sescratch_min_ms']:7.2f}"
        theirs = f"{r['torch_median_ms']:8.2f} /{r['torch_min_ms']:7.2f}" if torch else "-"
        ratio = f"{r['ratio_median']:6.2f}" if torch else "-"
        print(f"{r['C']:>4} {r['H']:>3}x{r['H']:<2} {r['stride']:>2} {ours:>17} {theirs:>17} {ratio:>6}")


if __name__ == "__main__":
    main()
