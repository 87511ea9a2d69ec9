"""Exact parameter counts of the model zoo (issue 4), the paper's Eq. 5 and Table 10.

Models are built with ``init=False`` (zeros, lazily mapped pages), so even SENet-154 is cheap.
"""
import pytest

from sescratch import models

CIFAR = {
    ("resnet20", "B"): 272_474,
    ("se_resnet20", "B"): 274_847,
    ("resnet20", "A"): 269_722,
    ("se_resnet20", "A"): 272_095,
    ("resnet56", "B"): 855_770,
    ("se_resnet56", "B"): 862_889,
}

IMAGENET = {
    "resnet50": 25_557_032,
    "se_resnet50": 28_088_024,
    "se_resnet18": 11_778_592,
    "se_resnet34": 21_958_868,
    "se_resnet101": 49_326_872,
    "se_resnet152": 66_821_848,
    "se_resnext50_32x4d": 27_559_896,
    "se_resnext101_32x4d": 48_955_416,
    "senet154": 115_088_984,
}

# SE-ResNet-50: N_s blocks of C_s output channels per stage (paper Table 1)
SE_RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]


@pytest.mark.parametrize("name,shortcut", list(CIFAR))
def test_cifar_counts(name, shortcut):
    model = models.create(name, num_classes=10, shortcut=shortcut, init=False)
    assert model.num_parameters() == CIFAR[(name, shortcut)]


@pytest.mark.parametrize("name", list(IMAGENET))
def test_imagenet_counts(name):
    model = models.create(name, num_classes=1000, init=False)
    assert model.num_parameters() == IMAGENET[name]


def test_default_shortcut_is_b():
    assert models.create("se_resnet20", num_classes=10, init=False).num_parameters() == 274_847


def test_counts_do_not_depend_on_stride_placement():
    for stride_on in ("1x1", "3x3"):
        model = models.create("se_resnet50", num_classes=1000, stride_on=stride_on, init=False)
        assert model.num_parameters() == 28_088_024


def _se_weights(model):
    """Weights (not biases) of the SE FCs: what Eq. 5 counts."""
    return sum(p.size for n, p in model.named_parameters() if ".se_module." in n and n.endswith(".weight"))


@pytest.mark.parametrize("r", [2, 4, 8, 16, 32])
def test_eq5_se_weights(r):
    model = models.create("se_resnet50", num_classes=1000, reduction=r, init=False)
    eq5 = 2 / r * sum(n * c * c for n, c in SE_RESNET50_STAGES)
    assert _se_weights(model) == eq5


@pytest.mark.parametrize("r,millions", [(2, 45.7), (4, 35.7), (8, 30.7), (16, 28.1), (32, 26.9)])
def test_table10_parameter_column(r, millions):
    model = models.create("se_resnet50", num_classes=1000, reduction=r, init=False)
    assert abs(model.num_parameters() / 1e6 - millions) <= 0.1


def test_se_adds_only_the_excitation_fcs():
    plain = models.create("resnet50", num_classes=1000, init=False).num_parameters()
    se = models.create("se_resnet50", num_classes=1000, init=False)
    se_params = sum(p.size for n, p in se.named_parameters() if ".se_module." in n)
    assert se.num_parameters() - plain == se_params == 2_530_992
