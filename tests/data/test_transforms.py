"""Transforms: correct, vectorised over the batch, deterministic from the generator."""
import numpy as np
import pytest

from sescratch.data import BatchIterator, Transform, normalize, pad_to, random_crop, random_hflip


def batch(n=6, c=2, h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def test_random_crop_matches_per_image_reference():
    x = batch()
    out = random_crop(x, 2, np.random.default_rng(3))
    offsets = np.random.default_rng(3).integers(0, 5, size=(2, len(x)))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for n in range(len(x)):
        oy, ox = offsets[:, n]
        np.testing.assert_array_equal(out[n], padded[n, :, oy:oy + 5, ox:ox + 7])
    assert out.shape == x.shape and out.dtype == x.dtype


def test_random_crop_zero_padding_is_identity_and_offsets_cover_range():
    x = batch()
    np.testing.assert_array_equal(random_crop(x, 0, np.random.default_rng(0)), x)
    ones = np.ones((400, 1, 3, 3), np.uint8)
    out = random_crop(ones, 1, np.random.default_rng(0))
    kept = out.reshape(400, -1).sum(axis=1)
    assert set(kept) == {4, 6, 9}  # corner, edge and centre windows all occur


def test_hflip_flips_exactly_the_drawn_images():
    x = batch()
    out = random_hflip(x, np.random.default_rng(5))
    flip = np.random.default_rng(5).random(len(x)) < 0.5
    for n in range(len(x)):
        np.testing.assert_array_equal(out[n], x[n, :, :, ::-1] if flip[n] else x[n])
    assert 0 < flip.sum() < len(x)


def test_normalize_per_channel():
    x = np.random.default_rng(0).random((4, 3, 2, 2)).astype(np.float32)
    mean, std = [0.1, 0.2, 0.3], [0.5, 1.0, 2.0]
    out = normalize(x, mean, std)
    assert out.dtype == np.float32
    for c in range(3):
        np.testing.assert_allclose(out[:, c], (x[:, c] - mean[c]) / std[c], rtol=1e-6)


def test_pad_28_to_32_is_centred():
    x = np.full((2, 1, 28, 28), 7, np.uint8)
    out = pad_to(x, 32)
    assert out.shape == (2, 1, 32, 32)
    assert (out[:, :, 2:30, 2:30] == 7).all() and out.sum() == 7 * 28 * 28 * 2
    with pytest.raises(ValueError, match="smaller"):
        pad_to(x, 20)


def test_transform_is_deterministic_from_the_seed_and_normalises():
    x = batch(n=32, c=1, h=8, w=8)
    t = Transform(mean=[0.5], std=[0.25], augment=True, crop_padding=2)
    a = t(x, np.random.default_rng(11))
    b = t(x, np.random.default_rng(11))
    c = t(x, np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == x.shape
    plain = Transform(mean=[0.5], std=[0.25])(x)
    np.testing.assert_allclose(plain, (x / 255.0 - 0.5) / 0.25, rtol=1e-5, atol=1e-6)
    padded = Transform(mean=[0.0], std=[1.0], pad_to=12)(x)
    assert padded.shape == (32, 1, 12, 12)
    with pytest.raises(ValueError, match="Generator"):
        t(x)


def test_batch_iterator_shuffles_deterministically_and_covers_everything():
    x = np.arange(10)[:, None, None, None].astype(np.uint8)
    y = np.arange(10)
    it = BatchIterator(x, y, 4, rng=np.random.default_rng(0), shuffle=True)
    assert len(it) == 3
    first = [yb.tolist() for _, yb in it]
    second = [yb.tolist() for _, yb in it]  # the generator moved on: a new permutation
    assert sorted(sum(first, [])) == list(range(10)) and first != second
    again = [yb.tolist() for _, yb in BatchIterator(x, y, 4, rng=np.random.default_rng(0), shuffle=True)]
    assert again == first
    assert len(BatchIterator(x, y, 4, drop_last=True)) == 2
    ordered = [yb.tolist() for _, yb in BatchIterator(x, y, 4)]
    assert ordered == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="Generator"):
        BatchIterator(x, y, 4, shuffle=True)
