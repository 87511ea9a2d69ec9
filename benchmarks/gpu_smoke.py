"""The first two steps of ``benchmarks/gpu_check.sh``: what is installed, then a quick GPU smoke.

    python3 benchmarks/gpu_smoke.py --versions   # Python, NumPy, Numba, CuPy (CUDA), torch (CUDA)
    python3 benchmarks/gpu_smoke.py              # SE-ResNet-20 forward + backward, GPU against CPU

The smoke compiles every CuPy kernel a training step uses (conv, batch norm, ReLU, squeeze,
scale, the SGD update) and checks that the GPU's logits and first conv's weight gradient agree
with the CPU's. Exit status 0 when all is well.
"""
from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

import numpy as np  # noqa: E402


def versions() -> None:
    import numba

    print(f"Python {platform.python_version()} | NumPy {np.__version__} | Numba {numba.__version__}")
    import cupy

    runtime = cupy.cuda.runtime
    print(f"CuPy {cupy.__version__} | CUDA runtime {runtime.runtimeGetVersion()} | "
          f"driver {runtime.driverGetVersion()} | devices {runtime.getDeviceCount()} | "
          f"{runtime.getDeviceProperties(0)['name'].decode()}")
    try:
        import torch
    except ImportError:
        print("torch: not installed")
    else:
        print(f"torch {torch.__version__} | CUDA {torch.version.cuda} | "
              f"available {torch.cuda.is_available()}")


def smoke() -> None:
    from sescratch import backend, models
    from sescratch.ops import softmax_cross_entropy
    from sescratch.train import SGD

    if not backend.cupy_available():
        raise SystemExit("gpu_smoke: CuPy does not see a GPU")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    results = {}
    for device in ("cpu", "gpu"):
        model = backend.to_device(models.create("se_resnet20", num_classes=10, seed=0), device)
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        logits = model(backend.to_device(x, device))
        loss, dlogits = softmax_cross_entropy(logits, y)  # labels stay on the host
        model.zero_grad()
        model.backward(dlogits)
        grad = backend.to_numpy(model.parameters()[0].grad).copy()
        optimizer.step()
        results[device] = backend.to_numpy(logits), grad, float(loss)
        print(f"{device}: loss {float(loss):.6f}")
    for i, what in enumerate(("logits", "first weight gradient")):
        cpu, gpu = results["cpu"][i], results["gpu"][i]
        err = float(np.abs(gpu - cpu).max() / max(np.abs(cpu).max(), 1e-30))
        print(f"{what}: max |GPU - CPU| / max |CPU| = {err:.2e}")
        assert err < 1e-3, f"{what} differ between GPU and CPU: {err:.2e}"
    print("smoke OK")


if __name__ == "__main__":
    versions() if "--versions" in sys.argv[1:] else smoke()
