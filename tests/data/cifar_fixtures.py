"""Small CIFAR archives in the exact official layout (few images per batch), built by the tests."""
import io
import tarfile
from pathlib import Path

import numpy as np

from tests.data import py2pickle

CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                 b"dog", b"frog", b"horse", b"ship", b"truck"]


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(payload))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _images(rng, n):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def build_cifar10_python(directory: Path, per_batch: int = 4, seed: int = 0, payload=None):
    """``cifar-10-python.tar.gz`` in ``directory``; returns (path, x_train, y_train, x_test, y_test).

    ``payload`` (bytes) replaces the pickle of ``data_batch_1`` (to plant a malicious one).
    """
    rng = np.random.default_rng(seed)
    path = Path(directory) / "cifar-10-python.tar.gz"
    xs, ys = [], []
    with tarfile.open(path, "w:gz") as tar:
        _add_dir(tar, "cifar-10-batches-py")
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            x, y = _images(rng, per_batch), [int(v) for v in rng.integers(0, 10, per_batch)]
            batch = {b"batch_label": f"{name} label".encode(), b"labels": y, b"data": x,
                     b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)]}
            raw = py2pickle.dumps(batch)
            if payload is not None and name == "data_batch_1":
                raw = payload
            _add(tar, f"cifar-10-batches-py/{name}", raw)
            xs.append(x)
            ys.append(np.array(y))
        meta = {b"num_cases_per_batch": per_batch, b"label_names": CIFAR10_NAMES, b"num_vis": 3072}
        _add(tar, "cifar-10-batches-py/batches.meta", py2pickle.dumps(meta))
        _add(tar, "cifar-10-batches-py/readme.html", b"<html></html>")
    shape = (-1, 3, 32, 32)
    return (path, np.concatenate(xs[:5]).reshape(shape), np.concatenate(ys[:5]),
            xs[5].reshape(shape), ys[5])


def build_cifar100_python(directory: Path, n_train: int = 6, n_test: int = 4, seed: int = 1):
    rng = np.random.default_rng(seed)
    path = Path(directory) / "cifar-100-python.tar.gz"
    out = {}
    with tarfile.open(path, "w:gz") as tar:
        _add_dir(tar, "cifar-100-python")
        for name, n in (("train", n_train), ("test", n_test)):
            x = _images(rng, n)
            fine = [int(v) for v in rng.integers(0, 100, n)]
            coarse = [int(v) for v in rng.integers(0, 20, n)]
            batch = {b"filenames": [b"f.png"] * n, b"batch_label": name.encode(),
                     b"fine_labels": fine, b"coarse_labels": coarse, b"data": x}
            _add(tar, f"cifar-100-python/{name}", py2pickle.dumps(batch))
            out[name] = (x.reshape(-1, 3, 32, 32), np.array(fine), np.array(coarse))
        meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}
        _add(tar, "cifar-100-python/meta", py2pickle.dumps(meta))
        _add(tar, "cifar-100-python/file.txt~", b"")
    return path, out


def build_cifar10_binary(directory: Path, per_batch: int = 4, seed: int = 2):
    rng = np.random.default_rng(seed)
    path = Path(directory) / "cifar-10-binary.tar.gz"
    xs, ys = [], []
    with tarfile.open(path, "w:gz") as tar:
        _add_dir(tar, "cifar-10-batches-bin")
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            x = _images(rng, per_batch)
            y = rng.integers(0, 10, per_batch).astype(np.uint8)
            records = np.concatenate([y[:, None], x], axis=1)  # N,3073
            _add(tar, f"cifar-10-batches-bin/{name}", records.tobytes())
            xs.append(x)
            ys.append(y.astype(np.int64))
        names = b"\n".join(CIFAR10_NAMES) + b"\n\n"
        _add(tar, "cifar-10-batches-bin/batches.meta.txt", names)
        _add(tar, "cifar-10-batches-bin/readme.html", b"<html></html>")
    shape = (-1, 3, 32, 32)
    return (path, np.concatenate(xs[:5]).reshape(shape), np.concatenate(ys[:5]),
            xs[5].reshape(shape), ys[5])
