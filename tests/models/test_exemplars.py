"""The paper's other SE exemplars (issue 11): exact sizes, the paper's cost columns, SE placement,
the CIFAR counterparts, the summary command and the errors of bad options and inputs.

Models are built with ``init=False`` (zeros, lazily mapped pages) and summarised by shape
propagation only, so even VGG-16 at 224x224 costs no time.
"""
import json

import pytest

from sescratch import cli, models
from sescratch.summary import summary

SE_OPTIONS = ("reduction", "squeeze", "gate")

# name: (parameters at 1000 classes, input (C, H, W))
IMAGENET = {
    "vgg16_bn": (138_365_992, (3, 224, 224)),
    "se_vgg16_bn": (138_596_784, (3, 224, 224)),
    "bn_inception": (11_295_240, (3, 224, 224)),
    "se_bn_inception": (11_941_638, (3, 224, 224)),
    "inception_resnet_v2": (55_843_464, (3, 299, 299)),
    "se_inception_resnet_v2": (64_387_444, (3, 299, 299)),
    "mobilenet_v1": (4_231_976, (3, 224, 224)),
    "se_mobilenet_v1": (4_718_044, (3, 224, 224)),  # the paper's 4.2 M -> 4.7 M
    "shufflenet_v1_g3": (1_865_728, (3, 224, 224)),
    "se_shufflenet_v1_g3": (2_441_923, (3, 224, 224)),  # the paper's 1.8 M -> 2.4 M
}
# name: (parameters at 10 classes and 3 input channels, SE blocks)
CIFAR = {
    "vgg16_bn_cifar": (924_186, 0), "se_vgg16_bn_cifar": (939_452, 13),
    "bn_inception_cifar": (649_938, 0), "se_bn_inception_cifar": (691_088, 10),
    "inception_resnet_v2_cifar": (349_242, 0), "se_inception_resnet_v2_cifar": (384_714, 9),
    "mobilenet_v1_cifar": (823_722, 0), "se_mobilenet_v1_cifar": (946_820, 13),
    "shufflenet_v1_g3_cifar": (914_338, 0), "se_shufflenet_v1_g3_cifar": (1_490_533, 13),
}
# the paper's Table 2 / Table 3 cost columns, multiply-accumulates plain -> SE
PAPER_COST = {
    "vgg16_bn": (15.47e9, 15.48e9),
    "bn_inception": (2.03e9, 2.04e9),
    "mobilenet_v1": (569e6, 572e6),
}


def _imagenet(name):
    return models.create(name, num_classes=1000, init=False)


def _summary(name):
    return summary(_imagenet(name), IMAGENET[name][1])


@pytest.mark.parametrize("name", list(IMAGENET))
def test_imagenet_parameter_counts(name):
    assert _imagenet(name).num_parameters() == IMAGENET[name][0]


@pytest.mark.parametrize("name", list(CIFAR))
def test_cifar_parameter_counts_and_se_blocks(name):
    model = models.create(name, num_classes=10, init=False)
    assert model.num_parameters() == CIFAR[name][0]
    assert len(model.se_blocks()) == CIFAR[name][1]


def test_every_exemplar_is_registered_with_its_cifar_counterpart():
    names = set(models.list_models())
    for name in IMAGENET:
        assert name in names and f"{name}_cifar" in names


@pytest.mark.parametrize("plain", list(PAPER_COST))
def test_paper_cost_columns_within_one_percent(plain):
    base, with_se = PAPER_COST[plain]
    assert abs(_summary(plain).backbone_macs / base - 1) < 0.01
    se = _summary(f"se_{plain}")
    assert se.backbone_macs == _summary(plain).backbone_macs  # SE leaves the backbone as it is
    assert abs((se.backbone_macs + se.se_macs) / with_se - 1) < 0.01


def test_shufflenet_cost():
    """137 M MACs: the ShuffleNet paper's Table 1 for 1x, g = 3 (the SE paper's "140" is that model's
    rounded label); with SE on the 13 stride-1 units 140.8 M, the SE paper's 142 within 1 %."""
    plain, se = _summary("shufflenet_v1_g3"), _summary("se_shufflenet_v1_g3")
    assert plain.backbone_macs == 137_460_672
    assert abs(plain.backbone_macs / 137e6 - 1) < 0.01
    assert abs((se.backbone_macs + se.se_macs) / 142e6 - 1) < 0.01


def test_inception_resnet_v2_cost_at_299():
    """13.16 G MACs at 299: what the architecture computes (conv/FC MACs, counted layer by layer and
    checked against torch below). The paper's 11.75 GFLOPs is *not* reproduced: no input size near
    299 gives it (295: 11.72, 299: 13.16, the grid jumps from 34 to 35); the SE share is small, as
    in the paper (+0.24 % here, +0.09 % there)."""
    plain, se = _summary("inception_resnet_v2"), _summary("se_inception_resnet_v2")
    assert plain.backbone_macs == 13_155_794_016
    assert se.se_macs / plain.backbone_macs < 0.003


@pytest.mark.parametrize("name,delta", [("mobilenet_v1", 486_068), ("shufflenet_v1_g3", 576_195)])
def test_se_parameters_are_the_excitation_fcs(name, delta):
    plain, se = _imagenet(name), _imagenet(f"se_{name}")
    assert se.num_parameters() - plain.num_parameters() == delta == _summary(f"se_{name}").se_params
    assert sum(block.num_parameters() for block in se.se_blocks().values()) == delta


def test_se_placement_labels():
    assert list(_imagenet("se_vgg16_bn").se_blocks())[:4] == ["SE_1_1", "SE_1_2", "SE_2_1", "SE_2_2"]
    assert list(_imagenet("se_bn_inception").se_blocks()) == [
        "SE_3_1", "SE_3_2", "SE_3_3", "SE_4_1", "SE_4_2", "SE_4_3", "SE_4_4", "SE_4_5", "SE_5_1", "SE_5_2"]
    irv2 = _imagenet("se_inception_resnet_v2")
    blocks = irv2.se_blocks()
    assert len(blocks) == 40 and blocks["SE_7_10"] is irv2.block8.se_module
    assert blocks["SE_5_1"] is irv2.repeat[0].se_module and blocks["SE_6_20"] is irv2.repeat_1[19].se_module
    shuffle = _imagenet("se_shufflenet_v1_g3").se_blocks()
    assert "SE_2_1" not in shuffle and "SE_3_1" not in shuffle and len(shuffle) == 13  # stride-1 units only
    assert len(_imagenet("se_mobilenet_v1").se_blocks()) == 13


def test_se_vgg_backbone_keeps_the_plain_names():
    plain = set(_imagenet("vgg16_bn").state_dict())
    se = set(_imagenet("se_vgg16_bn").state_dict())
    assert plain < se and all(".se" in k for k in se - plain)
    assert "features.41.running_var" in plain and "last_linear.weight" in plain


@pytest.mark.parametrize("name", list(CIFAR))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_cifar_models_take_28_and_32(name, shape):
    model = models.create(name, num_classes=10, in_channels=shape[0], init=False)
    assert model.output_shape((2,) + shape) == (2, 10)


def test_vgg_is_fixed_size():
    with pytest.raises(ValueError, match=r"vgg16_bn: .*224x224 images only.*got \(1, 3, 200, 200\)"):
        _imagenet("vgg16_bn").output_shape((1, 3, 200, 200))


def test_too_small_input_names_model_and_layer():
    with pytest.raises(ValueError, match=r"inception_resnet_v2: input of shape \(1, 3, 64, 64\) does not fit: layer"):
        _imagenet("inception_resnet_v2").output_shape((1, 3, 64, 64))


@pytest.mark.parametrize("name,option,value,match", [
    ("shufflenet_v1_g3", "groups", 5, r"shufflenet_v1_g3: option groups must be one of 1, 2, 3, 4, 8.*got 5"),
    ("shufflenet_v1_g3_cifar", "groups", 0, r"shufflenet_v1_g3_cifar: option groups must be one of 1, 2, 3, 4, 8"),
    ("mobilenet_v1", "width_multiplier", 0, r"mobilenet_v1: option width_multiplier must be a positive number"),
    ("vgg16_bn_cifar", "width", 0, r"create\('vgg16_bn_cifar'\): option width must be an int in \[1, 1024\], got 0"),
])
def test_bad_option_values(name, option, value, match):
    with pytest.raises(ValueError, match=match):
        models.create(name, num_classes=10, init=False, **{option: value})


@pytest.mark.parametrize("name,option", [("bn_inception", "width"), ("se_vgg16_bn", "placement"),
                                         ("mobilenet_v1", "groups"), ("vgg16_bn", "reduction")])
def test_unknown_option_names_model_and_valid_options(name, option):
    with pytest.raises(ValueError, match=rf"create\('{name}'\): unknown option\(s\) {option}; valid options: "):
        models.create(name, num_classes=10, init=False, **{option: 1})


@pytest.mark.parametrize("groups", [1, 2, 4, 8])
def test_shufflenet_other_groups_build(groups):
    model = models.create("shufflenet_v1_g3", num_classes=1000, groups=groups, init=False)
    assert summary(model, (3, 224, 224)).backbone_macs < 150e6  # the ShuffleNet paper's ~140 M budget


def test_summary_json_command(capsys):
    assert cli.main(["summary", "se_mobilenet_v1", "--input", "3,224,224", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["parameters"] == 4_718_044 and data["se_parameters"] == 486_068
    assert data["macs"] == 568_740_352 + data["se_macs"] and data["se_macs"] > 0
    assert {"name", "kind", "output_shape", "params", "macs", "group", "part"} <= set(data["layers"][0])
    assert sum(r["params"] for r in data["layers"]) == data["parameters"]


@pytest.mark.parametrize("name", [n for n in IMAGENET if n.startswith("se_")])
def test_summary_rows_cover_every_parameter(name):
    model = _imagenet(name)
    result = summary(model, IMAGENET[name][1])
    assert sum(r.params for r in result.records) == result.params == model.num_parameters()
    assert result.se_params == sum(block.num_parameters() for block in model.se_blocks().values()) > 0
    assert result.macs("se", "fc") > 0


def test_train_cli_lists_the_cifar_exemplars(capsys):
    assert cli.main(["train", "--model", "list"]) == 0
    listed = capsys.readouterr().out
    for name in CIFAR:
        assert name in listed


@pytest.mark.parametrize("name", ["se_resnet20", "se_mobilenet_v1_cifar", "se_vgg16_bn_cifar"])
def test_an_input_of_another_dtype_or_no_array_names_the_cast(name):
    import numpy as np

    model = models.create(name, num_classes=10)
    x = np.zeros((1, 3, 32, 32))
    with pytest.raises(TypeError, match=rf"{name}: input of dtype float64, but the model's weights are float32: "
                                        r"cast the input \(x.astype\(np.float32\)\) or the model"):
        model(x)
    with pytest.raises(TypeError, match=rf"{name}: input of dtype uint8, .* convert the images to float32"):
        model(x.astype(np.uint8))
    with pytest.raises(TypeError, match=rf"{name}: expected an array of shape \(N, 3, H, W\), got list"):
        model(x.tolist())
    assert model.astype(np.float64)(x).shape == (1, 10)  # the other cast the message offers
