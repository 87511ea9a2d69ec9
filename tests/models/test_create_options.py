"""``create``: each call initialises from its own seed; every model takes ``dropout=p``."""
import numpy as np
import pytest

from sescratch import models, nn
from tests.models.test_models import EXPECTED_MODELS


def _weights(model):
    return {name: p.data.copy() for name, p in model.named_parameters()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("seed", [None, 0, 5])
def test_two_creates_in_a_row_are_identical(seed):
    first = _weights(models.create("se_resnet20", num_classes=4, width=4, seed=seed))
    second = _weights(models.create("se_resnet20", num_classes=4, width=4, seed=seed))
    _assert_same(first, second)


def test_create_does_not_depend_on_what_was_built_before():
    before = _weights(models.create("se_resnet20", num_classes=4, width=4, seed=3))
    default = _weights(models.create("se_resnet20", num_classes=4, width=4))
    models.create("resnet32", num_classes=10)  # draws from its own generator
    models.create("se_resnet50", num_classes=10, init=False)
    nn.init.manual_seed(123)  # the default generator of direct layer construction ...
    nn.Conv2d(8, 8, 3)  # ... and a draw from it
    _assert_same(_weights(models.create("se_resnet20", num_classes=4, width=4, seed=3)), before)
    _assert_same(_weights(models.create("se_resnet20", num_classes=4, width=4)), default)
    _assert_same(default, _weights(models.create("se_resnet20", num_classes=4, width=4, seed=models.DEFAULT_SEED)))


def test_create_leaves_the_direct_construction_generator_alone():
    nn.init.manual_seed(9)
    expected = nn.Linear(4, 4).weight.data
    nn.init.manual_seed(9)
    models.create("resnet20", num_classes=3, width=4)
    np.testing.assert_array_equal(nn.Linear(4, 4).weight.data, expected)


def test_different_seeds_give_different_weights():
    a = models.create("resnet20", num_classes=4, width=4, seed=1).layer1[0].conv1.weight.data
    b = models.create("resnet20", num_classes=4, width=4, seed=2).layer1[0].conv1.weight.data
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match=r"create\('resnet20'\): seed must be a non-negative int or None"):
        models.create("resnet20", num_classes=3, seed=seed)


@pytest.mark.parametrize("name", EXPECTED_MODELS)
def test_every_model_takes_dropout_before_the_classifier(name):
    model = models.create(name, num_classes=7, dropout=0.3, init=False)
    names = [n for n, _ in model.named_children()]
    assert names[-3:] == ["avg_pool", "dropout", "last_linear"]
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.3
    default = models.create(name, num_classes=7, init=False)
    expected = 0.2 if name == "senet154" else None  # the release's SENet-154 keeps its 0.2
    assert getattr(getattr(default, "dropout", None), "p", None) == expected
    assert model.num_parameters() == default.num_parameters()


def test_dropout_zero_means_no_layer():
    model = models.create("senet154", num_classes=7, dropout=0, init=False)
    assert "dropout" not in dict(model.named_children())


@pytest.mark.parametrize("p", [-0.1, 1.0, 2, "0.3", True])
def test_bad_dropout_names_model_and_option(p):
    with pytest.raises(ValueError, match=r"create\('se_resnet20'\): option dropout must be a number in \[0, 1\)"):
        models.create("se_resnet20", num_classes=3, dropout=p)


def test_training_with_dropout_needs_the_run_generator():
    model = models.create("resnet20", num_classes=3, width=4, dropout=0.5)
    x = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(RuntimeError, match=r"call model.set_rng\("):
        model(x)
    model.eval()
    assert model(x).shape == (2, 3)  # eval: no generator needed
