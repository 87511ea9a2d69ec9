"""IDX parsing on files in the official format, the MNIST-family loaders and the search order."""
import gzip
import hashlib
import struct

import numpy as np
import pytest

from sescratch.data import load_dataset, mnist, sources
from sescratch.data.idx import read_idx, read_idx_bytes, write_idx
from sescratch.errors import DataError

FILES = mnist.FILES


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """The official layout, written independently of sescratch's writer."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">" + array.dtype.str[1:] if array.itemsize > 1 else array.dtype).tobytes()


def write_mnist_dir(directory, n_train=20, n_test=10, seed=0, official_names=True):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, a in (("images-idx3", x), ("labels-idx1", y)):
            (directory / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(idx_bytes(a)))
        arrays[prefix] = (x, y)
    return arrays


def test_header_magic_type_and_dims_are_parsed(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(a)
    assert raw[:4] == b"\x00\x00\x08\x03" and raw[4:8] == b"\x00\x00\x00\x02"
    np.testing.assert_array_equal(read_idx_bytes(raw), a)
    (tmp_path / "a-idx3-ubyte").write_bytes(raw)
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), a)


@pytest.mark.parametrize("dtype, code", [("i2", 0x0B), ("i4", 0x0C), ("f4", 0x0D), ("f8", 0x0E)])
def test_big_endian_types(dtype, code):
    a = np.array([[1, -2, 300], [4, 5, -600]], dtype=dtype)
    out = read_idx_bytes(idx_bytes(a, code))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_writer_round_trip(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_idx(tmp_path / "w.gz", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "w.gz"), a)
    assert gzip.decompress((tmp_path / "w.gz").read_bytes()) == idx_bytes(a, 0x0D)


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00", "only 2 bytes"),
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 5), "truncated IDX header"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00" * 4, "holds 4 bytes"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00" * 6, "holds 6 bytes"),
])
def test_malformed_files_name_the_problem(raw, message):
    with pytest.raises(DataError, match=message):
        read_idx_bytes(raw, source="bad-file")


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: cannot read"):
        read_idx(path)


def test_loader_reads_official_layout(isolated):
    arrays = write_mnist_dir(isolated / "d")
    data = mnist.load_idx_dataset(mnist.FASHION_MNIST, isolated / "d", download=False,
                                  check_counts=False)
    assert data.x_train.shape == (20, 1, 28, 28) and data.x_train.dtype == np.uint8
    assert data.y_train.dtype == np.int64
    np.testing.assert_array_equal(data.x_test[:, 0], arrays["t10k"][0])
    np.testing.assert_array_equal(data.y_test, arrays["t10k"][1])
    assert data.classes[9] == "Ankle boot"


def test_loader_checks_official_counts_and_pairing(isolated):
    write_mnist_dir(isolated / "d")
    with pytest.raises(DataError, match="20 images, the official file has 60000"):
        load_dataset("fashion-mnist", data_dir=isolated / "d", download=False)
    bad = isolated / "d" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(idx_bytes(np.zeros(9, np.uint8))))
    with pytest.raises(DataError, match="9 labels for 10 images"):
        mnist.read_split(isolated / "d", "t10k")


def test_search_order(isolated, monkeypatch):
    places = {name: isolated / name for name in ("arg", "env", "cache", "system")}
    for i, path in enumerate(places.values()):
        write_mnist_dir(path, seed=i)
    monkeypatch.setenv("SESCRATCH_DATA", str(places["env"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "xdg"))
    write_mnist_dir(isolated / "xdg" / "sescratch" / "fashion-mnist", seed=2)
    monkeypatch.setitem(mnist.FASHION_MNIST, "system_dirs", (str(places["system"]),))
    spec = mnist.FASHION_MNIST
    assert mnist.locate(spec, places["arg"], download=False) == places["arg"]
    assert mnist.locate(spec, None, download=False) == places["env"]
    monkeypatch.delenv("SESCRATCH_DATA")
    assert mnist.locate(spec, None, download=False) == isolated / "xdg" / "sescratch" / "fashion-mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "empty"))
    assert mnist.locate(spec, None, download=False) == places["system"]


def test_dataset_subfolder_is_searched(isolated):
    write_mnist_dir(isolated / "root" / "mnist")
    assert mnist.locate(mnist.MNIST, isolated / "root", download=False) == isolated / "root" / "mnist"


def test_not_found_message_lists_places_and_how_to_get_the_data(isolated):
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", data_dir=isolated / "given", download=True)
    message = str(info.value)
    assert str(isolated / "given") in message and "--data-dir" in message
    assert "$SESCRATCH_DATA is not set" in message
    assert str(isolated / "xdg-cache" / "sescratch") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "Downloading failed" in message and "network disabled" in message


def test_download_verifies_md5_and_is_atomic(isolated, monkeypatch):
    monkeypatch.undo()  # real urlopen, used on file:// URLs only
    source = isolated / "server"
    write_mnist_dir(source)
    md5 = {f: hashlib.md5((source / f).read_bytes()).hexdigest() for f in FILES}
    monkeypatch.delenv("SESCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "cache"))
    spec = {**mnist.MNIST, "url": source.as_uri() + "/", "md5": md5}
    target = mnist.locate(spec, isolated / "dl", download=True)
    assert target == isolated / "dl" / "mnist" and all((target / f).exists() for f in FILES)
    bad = dict(md5, **{FILES[0]: "0" * 32})
    with pytest.raises(DataError, match="MD5 mismatch"):
        sources.download(spec["url"] + FILES[0], isolated / "dl2" / FILES[0], bad[FILES[0]])
    assert list((isolated / "dl2").iterdir()) == []  # no partial or bad file left behind


def test_published_checksums_are_the_official_ones():
    assert mnist.FASHION_MNIST["md5"]["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert mnist.MNIST["md5"]["t10k-labels-idx1-ubyte.gz"] == "ec29112dd5afa0611ce80d1b7f02629c"
    assert all(len(v) == 32 for spec in (mnist.MNIST, mnist.FASHION_MNIST) for v in spec["md5"].values())


DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not all(__import__("os").path.exists(f"{DEBIAN_FASHION}/{f}") for f in mnist.FILES),
                    reason="needs Debian's dataset-fashion-mnist")
def test_fashion_mnist_files_are_not_read_as_mnist(isolated):
    """Both datasets use the same file names: Fashion-MNIST's labels identify its files."""
    shared = isolated / "shared"
    shared.mkdir()
    for f in mnist.FILES:
        (shared / f).symlink_to(f"{DEBIAN_FASHION}/{f}")
    fashion = load_dataset("fashion-mnist", data_dir=shared, download=False)
    assert fashion.source == str(shared) and fashion.classes[0] == "T-shirt/top"
    with pytest.raises(DataError, match=f"{shared} holds Fashion-MNIST's files, not MNIST's"):
        load_dataset("mnist", data_dir=shared, download=False)
    assert sources.download_target("mnist", shared) == shared / "mnist"  # downloads go to a folder of their own
