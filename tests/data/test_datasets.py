"""The registry, the embedded Fashion-MNIST subset, the synthetic dataset and subsets."""
from pathlib import Path

import numpy as np
import pytest

from sescratch.data import DEFAULT_DATASET, list_datasets, load_dataset, make_synthetic
from sescratch.data import build_embedded, embedded
from sescratch.errors import DataError, UsageError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def test_registry_names_and_unknown_name():
    assert list_datasets() == ["fashion-mnist-subset", "fashion-mnist", "mnist", "cifar10",
                               "cifar100", "synthetic"]
    assert DEFAULT_DATASET == "fashion-mnist-subset"
    with pytest.raises(UsageError) as info:
        load_dataset("imagenet")
    assert "unknown dataset 'imagenet'" in str(info.value)
    assert all(name in str(info.value) for name in list_datasets())


def test_embedded_subset_is_stratified_uint8():
    data = load_dataset()
    assert data.name == "fashion-mnist-subset"
    assert data.x_train.shape == (6000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert np.bincount(data.y_train).tolist() == [600] * 10
    assert np.bincount(data.y_test).tolist() == [100] * 10
    assert data.classes[0] == "T-shirt/top" and data.num_classes == 10
    assert 2e6 < embedded.SUBSET_FILE.stat().st_size < 4.5e6
    mean, std = data.channel_stats()
    assert 0.25 < mean[0] < 0.32 and 0.3 < std[0] < 0.4


def test_embedded_subset_ships_its_licence():
    text = (embedded.EMBEDDED_DIR / "LICENSE.txt").read_text()
    assert "Zalando SE" in text and "MIT" in text and "Permission is hereby granted" in text


def test_corrupt_embedded_file_names_file_and_reason(tmp_path):
    bad = tmp_path / "subset.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="subset.npz: corrupt embedded dataset"):
        embedded.load_fashion_mnist_subset(bad)
    with pytest.raises(DataError, match="missing from the installation"):
        embedded.load_fashion_mnist_subset(tmp_path / "absent.npz")


@pytest.mark.slow  # reads and compresses the whole Fashion-MNIST
@pytest.mark.skipif(not (DEBIAN / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_rebuild_reproduces_the_shipped_file(tmp_path, monkeypatch):
    monkeypatch.delenv("SESCRATCH_DATA", raising=False)
    out = build_embedded.build(DEBIAN, tmp_path / "rebuilt.npz")
    assert out.read_bytes() == embedded.SUBSET_FILE.read_bytes()


def test_synthetic_is_deterministic_any_shape_and_learnable():
    a = load_dataset("synthetic", n_train=64, n_test=32, channels=3, size=10, seed=4)
    b = make_synthetic(64, 32, channels=3, size=10, seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.x_train.shape == (64, 3, 10, 10) and a.x_train.dtype == np.uint8
    assert not np.array_equal(a.x_train, make_synthetic(64, 32, channels=3, size=10, seed=5).x_train)
    # nearest class mean classifies the test set well: the classes are learnable
    means = np.stack([a.x_train[a.y_train == k].mean(axis=0) for k in range(10)])
    dist = ((a.x_test[:, None].astype(float) - means[None]) ** 2).sum(axis=(2, 3, 4))
    assert (dist.argmin(axis=1) == a.y_test).mean() > 0.9


def test_subset_is_stratified_and_exact_size():
    data = make_synthetic(200, 100, seed=0)
    small = data.subset(50, 23, seed=1)
    assert len(small.y_train) == 50 and len(small.y_test) == 23
    assert np.bincount(small.y_train, minlength=10).tolist() == [5] * 10
    assert np.bincount(small.y_test, minlength=10).min() >= 2
    same = data.subset(50, 23, seed=1)
    np.testing.assert_array_equal(small.x_train, same.x_train)


def test_an_unknown_dataset_option_is_named_with_the_valid_ones():
    from sescratch.data import load_dataset
    from sescratch.errors import UsageError
    from sescratch.train import TrainConfig

    with pytest.raises(UsageError, match=r"dataset synthetic: unknown dataset option 'colour'; valid: n_train, "):
        load_dataset("synthetic", colour=3)
    with pytest.raises(UsageError, match=r"dataset fashion-mnist-subset: unknown dataset option 'foo'; valid: path"):
        TrainConfig(dataset_options={"foo": 1}).validate()
    with pytest.raises(UsageError, match=r"dataset cifar10: unknown dataset options 'size', 'n'; valid: format"):
        TrainConfig(dataset="cifar10", dataset_options={"size": 1, "n": 2}).validate()
    assert load_dataset("synthetic", channels=3, size=8, n_train=20, n_test=10).image_shape == (3, 8, 8)

