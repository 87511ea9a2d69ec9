"""Rebuild ``embedded/fashion_mnist_subset.npz`` from the official Fashion-MNIST files.

    python -m sescratch.data.build_embedded [--data-dir DIR] [--out PATH]

Takes, for each of the 10 classes, 600 training and 100 test images chosen uniformly without
replacement with ``np.random.default_rng(SEED)``, keeps them in their original order, and writes
a compressed ``.npz`` whose bytes depend only on the data (fixed zip timestamps), so a rebuild
from the same files reproduces the shipped file exactly. The source files are found like any
Fashion-MNIST load (``--data-dir``, ``$SESCRATCH_DATA``, the cache, Debian's
``/usr/share/datasets/fashion-mnist``).
"""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from sescratch.data.embedded import SUBSET_FILE
from sescratch.data.mnist import FASHION_MNIST, locate, read_split

SEED = 20170825  # Fashion-MNIST's release date
PER_CLASS = {"train": 600, "test": 100}


def stratified_indices(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` indices of each label, drawn without replacement, returned sorted."""
    chosen = [rng.choice(np.flatnonzero(y == k), size=per_class, replace=False)
              for k in range(int(y.max()) + 1)]
    return np.sort(np.concatenate(chosen))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed``, but with fixed zip timestamps (reproducible bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue(), compresslevel=9)


def build(data_dir=None, out: Path = SUBSET_FILE) -> Path:
    directory = locate(FASHION_MNIST, data_dir, download=True)
    rng = np.random.default_rng(SEED)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = read_split(directory, prefix)
        keep = stratified_indices(y, PER_CLASS[split], rng)
        arrays[f"x_{split}"] = x[keep, 0]  # n,28,28
        arrays[f"y_{split}"] = y[keep].astype(np.uint8)  # n
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(out, arrays)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="directory holding the official .gz files")
    parser.add_argument("--out", default=str(SUBSET_FILE), help="output .npz path")
    args = parser.parse_args(argv)
    out = build(args.data_dir, Path(args.out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
