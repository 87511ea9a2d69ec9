"""CIFAR archives in the official layout: loading, MD5, safe extraction, restricted unpickling."""
import io
import pickle
import tarfile

import numpy as np
import pytest

from sescratch.data import cifar, load_dataset
from sescratch.data.archive import safe_extract
from sescratch.data.sources import md5sum
from sescratch.data.unpickle import restricted_loads
from sescratch.errors import DataError
from tests.data import py2pickle
from tests.data.cifar_fixtures import (build_cifar10_binary, build_cifar10_python,
                                       build_cifar100_python)


def test_cifar10_python_archive_loads_exactly(isolated, monkeypatch):
    path, x_train, y_train, x_test, y_test = build_cifar10_python(isolated)
    monkeypatch.setitem(cifar.CIFAR10_PYTHON, "md5", md5sum(path))
    data = load_dataset("cifar10", data_dir=isolated, download=False)
    assert data.x_train.dtype == np.uint8 and data.x_train.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.classes[0] == "airplane" and data.num_classes == 10
    # extracted next to the archive; a second load reads the folder without the archive
    assert (isolated / "cifar-10-batches-py" / "data_batch_5").exists()
    path.unlink()
    again = load_dataset("cifar10", data_dir=isolated, download=False)
    np.testing.assert_array_equal(again.x_train, x_train)


def test_cifar10_channel_layout_is_rgb_planes(isolated, monkeypatch):
    path, x_train, *_ = build_cifar10_python(isolated, per_batch=1)
    monkeypatch.setitem(cifar.CIFAR10_PYTHON, "md5", md5sum(path))
    data = load_dataset("cifar10", data_dir=isolated, download=False)
    flat = x_train.reshape(len(x_train), -1)
    np.testing.assert_array_equal(data.x_train[0, 1, 0, :], flat[0, 1024:1056])  # green, row 0


def test_cifar100_fine_and_coarse(isolated, monkeypatch):
    path, expected = build_cifar100_python(isolated)
    monkeypatch.setitem(cifar.CIFAR100_PYTHON, "md5", md5sum(path))
    fine = load_dataset("cifar100", data_dir=isolated, download=False)
    np.testing.assert_array_equal(fine.x_train, expected["train"][0])
    np.testing.assert_array_equal(fine.y_train, expected["train"][1])
    np.testing.assert_array_equal(fine.y_test, expected["test"][1])
    assert fine.num_classes == 100 and fine.classes[7] == "fine7"
    coarse = load_dataset("cifar100", data_dir=isolated, download=False, label="coarse")
    np.testing.assert_array_equal(coarse.y_train, expected["train"][2])
    assert coarse.num_classes == 20


def test_cifar10_binary_version(isolated, monkeypatch):
    path, x_train, y_train, x_test, y_test = build_cifar10_binary(isolated)
    monkeypatch.setitem(cifar.CIFAR10_BINARY, "md5", md5sum(path))
    data = load_dataset("cifar10", data_dir=isolated, download=False)  # auto: finds the binary one
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.classes == tuple(n.decode() for n in __import__(
        "tests.data.cifar_fixtures", fromlist=["x"]).CIFAR10_NAMES)


def test_binary_batch_with_partial_record_is_refused(tmp_path):
    bad = tmp_path / "data_batch_1.bin"
    bad.write_bytes(b"\x00" * 3074)
    with pytest.raises(DataError, match="whole number"):
        cifar.read_binary_batch(bad)


def test_md5_mismatch_is_refused(isolated):
    build_cifar10_python(isolated)  # the official MD5 cannot match this archive
    with pytest.raises(DataError, match="MD5 mismatch"):
        load_dataset("cifar10", data_dir=isolated, download=False, format="python")
    assert not (isolated / "cifar-10-batches-py").exists()  # nothing extracted


def test_not_found_says_where_and_how(isolated):
    with pytest.raises(DataError) as info:
        load_dataset("cifar100", data_dir=isolated / "nowhere", download=True)
    message = str(info.value)
    assert "cifar-100-python.tar.gz" in message and str(isolated / "nowhere") in message
    assert "Downloading failed" in message and "--data-dir" in message
    assert "eb9058c3a382ffc7106e4002c42a8d85" in message


def _tar_with(tmp_path, *members):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _file(name, payload=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("member, reason", [
    (_file("../escaped.txt"), "path traversal"),
    (_file("cifar-10-batches-py/../../escaped.txt"), "path traversal"),
    (_file("/tmp/sescratch-absolute.txt"), "absolute"),
    (_link("cifar-10-batches-py/link", "/etc/passwd"), "absolute target"),
    (_link("cifar-10-batches-py/link", "../../outside"), "points outside"),
    (_link("cifar-10-batches-py/hard", "../outside", tarfile.LNKTYPE), "points outside"),
])
def test_path_traversal_archive_is_refused(tmp_path, member, reason):
    archive = _tar_with(tmp_path, _file("cifar-10-batches-py/ok.txt"), member)
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=reason):
        safe_extract(archive, dest)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (dest / "cifar-10-batches-py" / "ok.txt").exists()  # refused before writing


def test_device_file_member_is_refused(tmp_path):
    info = tarfile.TarInfo("cifar-10-batches-py/dev")
    info.type = tarfile.CHRTYPE
    with pytest.raises(DataError, match="not a regular file"):
        safe_extract(_tar_with(tmp_path, (info, None)), tmp_path / "dest")


def test_malicious_pickle_in_archive_is_refused(isolated, monkeypatch):
    marker = isolated / "pwned"
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    path, *_ = build_cifar10_python(isolated, payload=evil)
    monkeypatch.setitem(cifar.CIFAR10_PYTHON, "md5", md5sum(path))
    with pytest.raises(DataError, match=r"global 'os\.system' is not allowed"):
        load_dataset("cifar10", data_dir=isolated, download=False)
    assert not marker.exists()


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("payload", [
    pickle.dumps(_Reduce(eval, ("1+1",)), protocol=2),
    pickle.dumps(_Reduce(__import__("os").getcwd, ()), protocol=4),
    pickle.dumps(b"bytes via _codecs", protocol=2),  # Python 3 protocol 2: _codecs.encode
    b"\x80\x02cnumpy\nndarray\nK\x02\x85R.",  # calling numpy.ndarray directly
    b"\x80\x02cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R.",  # object dtype
    b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncbuiltins\nobject\nK\x00\x85U\x01b\x87R.",
])
def test_restricted_unpickler_refuses_code_and_unsafe_numpy(payload):
    with pytest.raises(DataError, match="refused|corrupt"):
        restricted_loads(payload, source="test.pkl")


def test_restricted_unpickler_admits_plain_data_and_numeric_arrays():
    batch = {b"labels": [1, 2], b"name": b"x", b"data": np.arange(6, dtype=np.uint8).reshape(2, 3)}
    out = restricted_loads(py2pickle.dumps(batch))
    np.testing.assert_array_equal(out[b"data"], batch[b"data"])
    assert out[b"labels"] == [1, 2] and out[b"name"] == b"x"
    plain = {"a": [1, 2.5, "s", None, True, (1, 2)]}
    assert restricted_loads(pickle.dumps(plain, protocol=4)) == plain


def test_truncated_pickle_is_a_clear_error():
    raw = py2pickle.dumps({b"labels": [1, 2, 3]})
    with pytest.raises(DataError, match="test.pkl: corrupt pickle"):
        restricted_loads(raw[:-5], source="test.pkl")
