"""Op benchmarks: forward + backward of the hot ops, every backend against PyTorch, in one process.

    python benchmarks/bench_ops.py            # table on stdout
    python benchmarks/bench_ops.py --json     # the same measurements as JSON
    python benchmarks/bench_ops.py --quick    # fewer repetitions (a smoke run, not for the record)
    python benchmarks/bench_ops.py --shapes fashion-mnist   # the layers of the default recipe's epoch

Each case is a :class:`Case` in :data:`CASES`; its ``make(backend, rng)`` returns a callable that
runs forward + backward once (or ``None`` where the backend is unavailable). The backends of a
case run interleaved in blocks (a block of numpy calls, of numba, of cupy, of torch, again numpy,
...), so a load change on the machine hits all of them alike; after the warm-ups, the median of
the timed calls is reported with GFLOP/s (counted as the direct algorithm's multiply-adds x 2,
whatever algorithm ran) and the ratio to PyTorch's median. PyTorch is the oracle of speed only:
sescratch never imports it.

Why blocks (``--block``, default 5 timed calls, each block after one untimed call): PyTorch's
OpenMP workers keep spinning for a few milliseconds after each parallel region (one worker burnt
4-5 ms of CPU after a conv on the 2-core Xeon of 2026-12-02, whether the process then slept 1 or
300 ms), so a call timed right after PyTorch's runs on one core for that long — a 32 -> 64
stride-2 conv then took 8.7 ms against 7.5 ms back to back. Within a block each implementation
runs as in a training loop, its own calls back to back; the untimed first call absorbs the
switch. ``--block 1`` times call by call, as before (sescratch's workers sleep on a lock, so
only the implementation after PyTorch's pays).

Why glibc's malloc is set first (:func:`steady_malloc`; ``--fresh-malloc`` leaves it alone): in a
fresh process glibc serves every block over 128 KiB with a new mmap, so each call's multi-MB
tensors come in freshly faulted pages; once a block that large has been freed, glibc raises that
threshold to its size (up to 32 MiB) and serves them from the heap. A training loop is past that
point after its first step. A benchmark is not, until some earlier case happened to free a large
block: PyTorch's 32 -> 64 stride-2 conv took 9.3 ms in a fresh process and 4.9-5.0 ms after
(2-core Xeon, 2026-12-02; also after 3 training steps of a small net), which made its timings
bimodal from run to run and case to case. sescratch's arrays are NumPy's, which asks for huge
pages on blocks of 4 MiB or more, and its timings moved little (the same conv's backward 4.1-4.6
ms either way, from run to run). All cases are measured in the training loop's state.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

try:  # PyTorch first, so that its OpenMP runtime keeps its own settings (sescratch/kernels/numba/__init__.py)
    import torch  # noqa: F401
except ImportError:
    pass

from bench_gemm import blas_kernels  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from sescratch import backend  # noqa: E402
from sescratch.ops import conv2d_backward, conv2d_forward  # noqa: E402
from sescratch import ops  # noqa: E402  (batch norm and SE-block cases)

BACKENDS = ("numpy", "numba", "cupy", "torch")
Runner = Callable[[], None]


@dataclass
class Case:
    name: str
    flops: float  # of one forward + backward
    make: Callable[[str, np.random.Generator], Runner | None]
    bytes: float = 0.0  # compulsory memory traffic of one forward + backward; 0: no GB/s column


def _sescratch_runner(name: str, fn: Callable[..., None], arrays: list[np.ndarray]) -> Runner | None:
    """Run ``fn(*arrays)`` with the arrays on ``name``'s device and its kernel family selected."""
    if name == "cupy":
        if not backend.cupy_available():
            return None
        import cupy

        device_arrays = backend.to_device(arrays, "gpu")

        def run() -> None:
            fn(*device_arrays)
            cupy.cuda.Device().synchronize()

        return run
    if name == "numba":
        try:
            import numba  # noqa: F401
        except ImportError:
            return None

    def run() -> None:
        with backend.use(name):
            fn(*arrays)

    return run


def _torch_runner(fn: Callable[..., None], arrays: list[np.ndarray], grads: int) -> Runner | None:
    """``fn(*tensors)`` -> output; backward with ``arrays[-1]`` as upstream gradient."""
    try:
        import torch
    except ImportError:
        return None
    tensors = [torch.from_numpy(a).requires_grad_(i < grads) for i, a in enumerate(arrays[:-1])]
    dy = torch.from_numpy(arrays[-1])

    def run() -> None:
        y = fn(*tensors)
        torch.autograd.grad(y, tensors[:grads], dy)

    return run


def conv2d_case(N: int, C_in: int, C_out: int, H: int, K: int = 3, stride: int = 1,
                padding: int = 1, dtype=np.float32) -> Case:
    """conv2d forward + backward (no bias, as in a ResNet), x: (N, C_in, H, H), w: (C_out, C_in, K, K)."""
    OH = (H + 2 * padding - K) // stride + 1
    flops = 3 * 2.0 * N * C_out * OH * OH * C_in * K * K  # y, dx, dw: one GEMM's worth each

    def make(name: str, rng: np.random.Generator) -> Runner | None:
        x = rng.standard_normal((N, C_in, H, H), dtype=dtype)
        w = (rng.standard_normal((C_out, C_in, K, K), dtype=dtype) / np.sqrt(C_in * K * K)).astype(dtype)
        dy = rng.standard_normal((N, C_out, OH, OH), dtype=dtype)
        if name == "torch":
            import torch.nn.functional as F

            return _torch_runner(lambda x, w: F.conv2d(x, w, stride=stride, padding=padding),
                                 [x, w, dy], grads=2)

        def fwd_bwd(x, w, dy):
            y, cache = conv2d_forward(x, w, stride=stride, padding=padding)
            conv2d_backward(dy, cache)

        return _sescratch_runner(name, fwd_bwd, [x, w, dy])

    return Case(f"conv2d N={N} {C_in}->{C_out} {H}x{H} k{K} s{stride} p{padding}", flops, make)


def batchnorm_case(N: int, C: int, H: int, dtype=np.float32) -> Case:
    """Training-mode batch norm forward + backward (dx, dgamma, dbeta), x: (N, C, H, H).

    FLOPs counted per element: mean 1, variance 3, normalise 2; backward sums 3, dx 5 (= 14).
    GB/s counts x, y, dy and dx moved once each.
    """
    size = N * C * H * H

    def make(name: str, rng: np.random.Generator) -> Runner | None:
        x = rng.standard_normal((N, C, H, H), dtype=dtype)
        gamma, beta = rng.standard_normal(C, dtype=dtype), rng.standard_normal(C, dtype=dtype)
        dy = rng.standard_normal((N, C, H, H), dtype=dtype)
        if name == "torch":
            import torch.nn.functional as F

            return _torch_runner(lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True),
                                 [x, gamma, beta, dy], grads=3)

        def fwd_bwd(x, gamma, beta, dy):
            y, cache = ops.batchnorm2d_forward(x, gamma, beta, None, None, training=True)
            ops.batchnorm2d_backward(dy, cache)

        return _sescratch_runner(name, fwd_bwd, [x, gamma, beta, dy])

    return Case(f"batchnorm2d N={N} C={C} {H}x{H}", 14.0 * size, make,
                bytes=4.0 * size * np.dtype(dtype).itemsize)


def se_block_case(N: int, C: int, H: int, reduction: int = 16, dtype=np.float32) -> Case:
    """SE block forward + backward: squeeze, FC, ReLU, FC, sigmoid, scale (paper Eqs. 2-4).

    Gradients for u (both paths: scale and squeeze) and the FC weights and biases.
    FLOPs: the FCs' multiply-adds x 2 x 3, plus per element of u: squeeze 1, scale 1, and in the
    backward du 1, ds 2, squeeze 1, the fan-out sum 1 (= 7). GB/s counts u, y, dy, du once each.
    """
    hidden = max(C // reduction, 1)
    size = N * C * H * H
    flops = 3 * 2.0 * N * 2 * C * hidden + 7.0 * size

    def make(name: str, rng: np.random.Generator) -> Runner | None:
        u = rng.standard_normal((N, C, H, H), dtype=dtype)
        w1 = (rng.standard_normal((hidden, C), dtype=dtype) / np.sqrt(C)).astype(dtype)
        b1 = rng.standard_normal(hidden, dtype=dtype)
        w2 = (rng.standard_normal((C, hidden), dtype=dtype) / np.sqrt(hidden)).astype(dtype)
        b2 = rng.standard_normal(C, dtype=dtype)
        dy = rng.standard_normal((N, C, H, H), dtype=dtype)
        if name == "torch":
            import torch
            import torch.nn.functional as F

            def se(u, w1, b1, w2, b2):
                s = torch.sigmoid(F.linear(torch.relu(F.linear(u.mean(dim=(2, 3)), w1, b1)), w2, b2))
                return u * s[:, :, None, None]

            return _torch_runner(se, [u, w1, b1, w2, b2, dy], grads=5)

        def fwd_bwd(u, w1, b1, w2, b2, dy):
            z, c_squeeze = ops.global_avg_pool_forward(u)  # N,C
            h, c_fc1 = ops.linear_forward(z, w1, b1)  # N,C/r
            a, c_relu = ops.relu_forward(h)  # N,C/r
            g, c_fc2 = ops.linear_forward(a, w2, b2)  # N,C
            s, c_gate = ops.sigmoid_forward(g)  # N,C
            y, c_scale = ops.se_scale_forward(u, s)  # N,C,H,W
            du_from_scale, ds = ops.se_scale_backward(dy, c_scale)
            dg = ops.sigmoid_backward(ds, c_gate)
            da, dw2, db2 = ops.linear_backward(dg, c_fc2)
            dh = ops.relu_backward(da, c_relu)
            dz, dw1, db1 = ops.linear_backward(dh, c_fc1)
            du = du_from_scale + ops.global_avg_pool_backward(dz, c_squeeze)  # fan-out of u

        return _sescratch_runner(name, fwd_bwd, [u, w1, b1, w2, b2, dy])

    return Case(f"se_block N={N} C={C} {H}x{H} r{reduction}", flops, make,
                bytes=4.0 * size * np.dtype(dtype).itemsize)


def resnet20_cases(N: int, C_in: int, H: int) -> list[Case]:
    """Every conv shape of ResNet-20 (shortcut B) on a batch of N (C_in, H, H) images, then batch
    norm and SE blocks at its three stages' shapes."""
    H2, H3 = (H + 1) // 2, (H + 3) // 4  # after each stride-2 conv (k3 p1 or k1 p0)
    return [
        conv2d_case(N, C_in, 16, H),  # the stem
        conv2d_case(N, 16, 16, H),
        conv2d_case(N, 16, 32, H, stride=2),  # the first conv of stage 2
        conv2d_case(N, 16, 32, H, K=1, stride=2, padding=0),  # its projection shortcut
        conv2d_case(N, 32, 32, H2),
        conv2d_case(N, 32, 64, H2, stride=2),
        conv2d_case(N, 32, 64, H2, K=1, stride=2, padding=0),
        conv2d_case(N, 64, 64, H3),
        batchnorm_case(N, 16, H),
        batchnorm_case(N, 32, H2),
        batchnorm_case(N, 64, H3),
        se_block_case(N, 16, H),
        se_block_case(N, 32, H2),
        se_block_case(N, 64, H3),
    ]


SHAPES = {  # --shapes: the batch and image of bench_train_step.py, and of the default recipe (bench_epoch.py)
    "cifar": (128, 3, 32),
    "fashion-mnist": (64, 1, 28),
}
CASES: list[Case] = resnet20_cases(*SHAPES["cifar"])


def measure(case: Case, backends, warmup: int, reps: int, seed: int = 0, block: int = 5) -> list[dict]:
    """Timing of one case, the backends interleaved in blocks of ``block`` timed calls, each
    block after one untimed call (the module docstring says why); one result dict per backend."""
    runners = {}
    for name in backends:
        runner = case.make(name, np.random.default_rng(seed))
        if runner is not None:
            runners[name] = runner
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(warmup):
        for run in runners.values():
            run()
    for round_ in range(-(-reps // block)):
        for name, run in runners.items():
            run()  # the switch from the previous backend: untimed
            for _ in range(min(block, reps - round_ * block)):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    reference = medians.get("torch")
    return [
        {
            "case": case.name,
            "backend": name,
            "median_ms": 1e3 * m,
            "min_ms": 1e3 * min(times[name]),
            "gflops": case.flops / m / 1e9,
            "gbytes_per_s": case.bytes / m / 1e9 if case.bytes else None,
            "ratio_to_torch": m / reference if reference else None,
            "reps": len(times[name]),
        }
        for name, m in medians.items()
    ]


def steady_malloc() -> bool:
    """Put glibc's malloc where a training loop leaves it (the module docstring says why): blocks
    up to 32 MiB from the heap (M_MMAP_THRESHOLD), up to 64 MiB of free heap kept (M_TRIM_THRESHOLD).
    Returns whether that could be done (False without glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 64 << 20))


def machine() -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info["blas_kernels"] = blas_kernels()
    try:
        import torch

        info["torch"], info["torch_threads"] = torch.__version__, torch.get_num_threads()
    except ImportError:
        pass
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quick", action="store_true", help="2 warm-ups and 5 timed rounds")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated subset")
    parser.add_argument("--case", default="", help="only cases whose name contains this text")
    parser.add_argument("--shapes", choices=sorted(SHAPES), default="cifar",
                        help="ResNet-20's layers on CIFAR (batch 128, 3x32x32) or Fashion-MNIST (batch 64, 1x28x28)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of Numba and PyTorch (default: theirs, the CPU count)")
    parser.add_argument("--block", type=int, default=5,
                        help="timed calls per backend in a row (1: call by call; see the docstring)")
    parser.add_argument("--fresh-malloc", action="store_true",
                        help="leave glibc's malloc as a fresh process has it (see the docstring)")
    args = parser.parse_args(argv)
    malloc = "fresh" if args.fresh_malloc or not steady_malloc() else "steady (blocks <= 32 MiB from the heap)"
    warmup, reps = (2, 5) if args.quick else (args.warmup, args.reps)
    if args.threads:  # Numba, NumPy's OpenBLAS and PyTorch
        import numba

        from sescratch.kernels.numba.openblas import thread_controls

        numba.set_num_threads(args.threads)
        for _, put in thread_controls():
            put(args.threads)
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    load_before = os.getloadavg()[0]
    backends = [b for b in args.backends.split(",") if b]

    results = []
    for case in resnet20_cases(*SHAPES[args.shapes]):
        if args.case in case.name:
            rows = measure(case, backends, warmup, reps, block=max(1, args.block))
            results += rows
            if not args.json:
                _print_rows(rows)
    conv = [r["ratio_to_torch"] for r in results
            if r["case"].startswith("conv2d") and r["backend"] == "numba" and r["ratio_to_torch"]]
    loads = (load_before, os.getloadavg()[0])
    if args.json:
        print(json.dumps({"machine": machine(), "warmup": warmup, "reps": reps, "block": max(1, args.block),
                          "load_avg_1m": loads, "malloc": malloc,
                          "results": results}, indent=2))
    else:
        info = machine()
        print(f"\n{info.get('cpu', info['processor'])}, {info['cpu_count']} CPUs; numpy {info['numpy']}"
              + (f", torch {info['torch']} ({info['torch_threads']} threads)" if "torch" in info else "")
              + f"; median of {reps} after {warmup} warm-ups, interleaved in blocks of {max(1, args.block)}; load {loads[0]:.2f} -> {loads[1]:.2f}; malloc {malloc}; {info['blas_kernels']}")
        if conv:
            print(f"numba conv2d fwd+bwd vs torch: worst {max(conv):.2f}x over {len(conv)} shapes (target <= 1.3)")
    return 0


def _print_rows(rows: list[dict]) -> None:
    print(f"\n{rows[0]['case']}")
    print(f"  {'backend':8} {'median ms':>10} {'min ms':>8} {'GFLOP/s':>8} {'GB/s':>6} {'x torch':>8}")
    for r in rows:
        ratio = f"{r['ratio_to_torch']:.2f}" if r["ratio_to_torch"] is not None else "-"
        gbs = f"{r['gbytes_per_s']:.1f}" if r.get("gbytes_per_s") else "-"
        print(f"  {r['backend']:8} {r['median_ms']:10.2f} {r['min_ms']:8.2f} {r['gflops']:8.1f} {gbs:>6} {ratio:>8}")


if __name__ == "__main__":
    raise SystemExit(main())
