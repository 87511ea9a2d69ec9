"""Dropout: masks from the run's generator (``Module.set_rng``), never from the weight initialisation."""
import numpy as np
import pytest

from sescratch import models, nn


def _x(shape=(4, 6), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_mask_is_the_generators_draw_scaled():
    drop = nn.Dropout(0.25).set_rng(np.random.default_rng(5))
    x = _x()
    y = drop(x)
    keep = np.random.default_rng(5).random(x.shape) >= 0.25  # the same draw, independently
    np.testing.assert_array_equal(y, (x * (keep / 0.75).astype(np.float32)))
    assert y.dtype == np.float32 and 0 < keep.sum() < keep.size
    dy = _x(seed=1)
    np.testing.assert_array_equal(drop.backward(dy), dy * (keep / 0.75).astype(np.float32))


def test_training_without_generator_says_call_set_rng():
    with pytest.raises(RuntimeError, match=r"Dropout\(p=0.5\).*call model.set_rng\("):
        nn.Dropout(0.5)(_x())


def test_eval_and_p_zero_are_the_identity_without_generator():
    x = _x()
    assert nn.Dropout(0.5).eval()(x) is x
    zero = nn.Dropout(0.0)
    assert zero(x) is x and zero.backward(x) is x


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.3", True, None])
def test_bad_probability(p):
    with pytest.raises(ValueError, match=r"Dropout: p must be a number in \[0, 1\)"):
        nn.Dropout(p)


def test_set_rng_reaches_every_dropout_and_rejects_non_generators():
    seq = nn.Sequential(nn.Dropout(0.5), nn.Linear(6, 6), nn.Sequential(nn.Dropout(0.3)))
    rng = np.random.default_rng(0)
    assert seq.set_rng(rng) is seq
    assert seq[0].rng is rng and seq[2][0].rng is rng
    assert not hasattr(seq[1], "rng")
    with pytest.raises(TypeError, match="set_rng: expected a numpy.random.Generator, got int"):
        seq.set_rng(0)


def test_masks_depend_only_on_the_run_generator():
    model = models.create("resnet20", num_classes=3, width=4, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    y1 = model.set_rng(np.random.default_rng(11))(x)
    y2 = model.set_rng(np.random.default_rng(11))(x)
    y3 = model.set_rng(np.random.default_rng(12))(x)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)


def test_dropout_does_not_touch_the_weight_init_generator():
    nn.init.manual_seed(3)
    expected = nn.Linear(5, 5).weight.data
    nn.init.manual_seed(3)
    nn.Dropout(0.5).set_rng(np.random.default_rng(0))(_x((64, 64)))
    np.testing.assert_array_equal(nn.Linear(5, 5).weight.data, expected)


def test_gpu_mask_equals_cpu_mask():
    from sescratch import backend

    if not backend.cupy_available():
        pytest.skip("CuPy with a GPU is not available")
    import cupy

    x = _x()
    cpu = nn.Dropout(0.4).set_rng(np.random.default_rng(9))(x)
    gpu = nn.Dropout(0.4).set_rng(np.random.default_rng(9))(cupy.asarray(x))
    assert isinstance(gpu, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(gpu), cpu)
