"""Float32 GEMM probe: the machine's matrix-product peak, and the skinny shapes of ResNet-20.

The peak is NumPy's BLAS on square float32 products (all its threads), the physical yardstick of
the other benchmarks: ``bench_train_step.py`` reports the step's effective GFLOP/s as a fraction
of it. The skinny shapes are the matrix products a CIFAR ResNet-20 convolution makes at batch 128
(im2col: ``(N*OH*OW, 9C) @ (9C, K)``; Winograd F(2x2,3x3): 16 products ``(N*OH*OW/4, C) @ (C, K)``),
whole-batch and in chunks of 8 images as sescratch's kernels cut them. PyTorch's ``bmm`` (MKL)
runs the same shapes after NumPy when it is installed.

    python benchmarks/bench_gemm.py            # table
    python benchmarks/bench_gemm.py --json     # JSON
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

STAGES = ((16, 32), (32, 16), (64, 8))  # ResNet-20's stages: (channels, image size)


def _time(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _numpy_product(m: int, k: int, n: int, batch: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((batch, m, k), dtype=np.float32)
    b = rng.standard_normal((batch, k, n), dtype=np.float32)
    out = np.empty((batch, m, n), dtype=np.float32)
    return lambda: np.matmul(a, b, out=out)


def _torch_product(m: int, k: int, n: int, batch: int = 1, seed: int = 0):
    try:
        import torch
    except ImportError:
        return None
    rng = np.random.default_rng(seed)
    a = torch.from_numpy(rng.standard_normal((batch, m, k), dtype=np.float32))
    b = torch.from_numpy(rng.standard_normal((batch, k, n), dtype=np.float32))
    out = torch.empty((batch, m, n))
    return lambda: torch.bmm(a, b, out=out)


def gemm_peak(size: int = 1024, repeats: int = 5, threads: int | None = None) -> float:
    """GFLOP/s of NumPy's float32 ``(size x size) @ (size x size)``, the best of two sizes so that
    one unlucky size does not set the peak; on all BLAS threads, or ``threads`` of them (OpenBLAS,
    found as sescratch's conv kernels find it; ignored for another BLAS)."""
    from sescratch.kernels.numba.openblas import thread_controls

    libraries = thread_controls() if threads else []
    saved = [get() for get, _ in libraries]
    for _, put in libraries:
        put(threads)
    try:
        best = 0.0
        for s in (size, size + size // 2):
            best = max(best, 2.0 * s ** 3 / _time(_numpy_product(s, s, s), repeats) / 1e9)
        return best
    finally:
        for (_, put), count in zip(libraries, saved):
            put(count)


def blas_kernels() -> str:
    """Which GEMM kernels NumPy's OpenBLAS runs, and whether the environment chose them: the peak
    and every BLAS-bound figure follow it (on an AVX-512 CPU, OpenBLAS's Haswell kernels reach
    about half of its SkylakeX ones), so each benchmark prints it beside the CPU."""
    from sescratch.kernels.numba.openblas import openblas_kernels

    core = openblas_kernels()
    if core is None:
        return "BLAS: not OpenBLAS (kernels unknown)"
    forced = os.environ.get("OPENBLAS_CORETYPE")
    return f"OpenBLAS kernels {core}" + (f" (OPENBLAS_CORETYPE={forced} set in the environment)" if forced else "")


def shapes(batch: int = 128, chunk_images: int | None = None) -> list[tuple[str, int, int, int, int]]:
    """(label, batch of products, m, k, n) of ResNet-20's conv GEMMs (3x3 and stride-2 1x1)."""
    rows = []
    for C, H in STAGES:
        images = batch if chunk_images is None else min(batch, chunk_images)
        where = "batch" if chunk_images is None else f"{images} img"
        rows.append((f"im2col   {C:2d}ch {H:2d}x{H:<2d} {where}", 1, images * H * H, 9 * C, C))
        rows.append((f"winograd {C:2d}ch {H:2d}x{H:<2d} {where}", 16, images * H * H // 4, C, C))
    return rows


def measure(batch: int = 128, repeats: int = 5, torch_too: bool = True) -> dict:
    """{"peak_gflops", "peak_1thread_gflops", "shapes": [...]} measured now, NumPy then PyTorch
    for each shape."""
    result = {"blas_kernels": blas_kernels(), "peak_gflops": gemm_peak(repeats=repeats),
              "peak_1thread_gflops": gemm_peak(repeats=repeats, threads=1), "shapes": []}
    rows = [(label, b, m, k, n) for chunk in (None, 8) for label, b, m, k, n in shapes(batch, chunk)]
    for label, b, m, k, n in rows:
        flops = 2.0 * b * m * k * n
        result["shapes"].append({"shape": label, "products": b, "m": m, "k": k, "n": n,
                                 "numpy_gflops": flops / _time(_numpy_product(m, k, n, b), repeats) / 1e9})
    # PyTorch after all of NumPy's products, not between them: each library's idle threads
    # spin for a while after a product, and would slow the other's next one down.
    time.sleep(0.2)
    for row in result["shapes"] if torch_too else ():
        fn = _torch_product(row["m"], row["k"], row["n"], row["products"])
        if fn is not None:
            flops = 2.0 * row["products"] * row["m"] * row["k"] * row["n"]
            row["torch_gflops"] = flops / _time(fn, repeats) / 1e9
    return result


def report(result: dict, out=sys.stdout) -> None:
    peak = result["peak_gflops"]
    print(f"float32 GEMM peak (NumPy, square): {peak:.0f} GFLOP/s, "
          f"{result['peak_1thread_gflops']:.0f} on one thread; {result['blas_kernels']}", file=out)
    print(f"{'shape':<30} {'products':>8} {'m x k x n':>20} {'numpy':>7} {'% peak':>7} {'torch':>7}", file=out)
    for r in result["shapes"]:
        torch = f"{r['torch_gflops']:7.0f}" if "torch_gflops" in r else "      -"
        mkn = f"{r['m']}x{r['k']}x{r['n']}"
        print(f"{r['shape']:<30} {r['products']:8d} {mkn:>20} {r['numpy_gflops']:7.0f} "
              f"{r['numpy_gflops'] / peak:7.0%} {torch}", file=out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.batch, args.repeats, not args.no_torch)
    result["cpus"], result["load_avg_1m"] = os.cpu_count(), os.getloadavg()[0]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
        print(f"{result['cpus']} CPUs, load {result['load_avg_1m']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
