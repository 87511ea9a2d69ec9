"""Model zoo API: names, options, input checks, SE block naming, summary and its command."""
import numpy as np
import pytest

from sescratch import backend, cli, models
from sescratch.models.exemplars import EXEMPLARS
from sescratch.nn import SEBlock
from sescratch.summary import summary

EXPECTED_MODELS = [
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "se_resnet20", "se_resnet32", "se_resnet44", "se_resnet56", "se_resnet110",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "se_resnet18", "se_resnet34", "se_resnet50", "se_resnet101", "se_resnet152",
    "resnext50_32x4d", "se_resnext50_32x4d", "se_resnext101_32x4d", "senet154",
]


def test_list_models():
    exemplars = list(EXEMPLARS)  # the paper's other exemplars and their _cifar counterparts (issue 11)
    assert len(exemplars) == 20 and all(name in exemplars for name in ("se_vgg16_bn", "se_mobilenet_v1_cifar"))
    assert sorted(models.list_models()) == sorted(EXPECTED_MODELS + exemplars)


@pytest.mark.parametrize("name", EXPECTED_MODELS)
def test_every_model_builds_and_traces(name):
    model = models.create(name, num_classes=7, init=False)
    assert model.output_shape((2, 3, 64, 64)) == (2, 7)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'se_resnet21'.*se_resnet20.*senet154"):
        models.create("se_resnet21", num_classes=10)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match="unknown option.*reduction.*valid options:.*shortcut.*width"):
        models.create("resnet20", num_classes=10, reduction=8)
    with pytest.raises(ValueError, match="valid options:.*reduction.*placement.*squeeze.*gate"):
        models.create("se_resnet50", num_classes=10, shortcut="A")


@pytest.mark.parametrize("option,value", [("placement", "middle"), ("squeeze", "median"), ("gate", "softmax"),
                                          ("shortcut", "C"), ("reduction", 0), ("width", 0)])
def test_bad_option_values(option, value):
    with pytest.raises(ValueError, match=option):
        models.create("se_resnet20", num_classes=10, **{option: value})


def test_num_classes_is_required_and_positive():
    with pytest.raises(TypeError):
        models.create("resnet20")
    with pytest.raises(ValueError, match="num_classes"):
        models.create("resnet20", num_classes=0)


def test_wrong_channel_count_names_model_layer_and_shapes():
    model = models.create("se_resnet20", num_classes=10)
    with pytest.raises(ValueError) as info:
        model(np.zeros((2, 1, 32, 32), np.float32))
    msg = str(info.value)
    assert "se_resnet20" in msg and "layer0.conv1" in msg and "(N, 3, H, W)" in msg and "(N, 1, 32, 32)" in msg


def test_wrong_ndim():
    model = models.create("resnet20", num_classes=10)
    with pytest.raises(ValueError, match=r"resnet20: expected input of shape \(N, 3, H, W\), got \(3, 32, 32\)"):
        model(np.zeros((3, 32, 32), np.float32))


def test_spatial_size_too_small_names_the_layer():
    model = models.create("se_resnet50", num_classes=10, init=False)
    with pytest.raises(ValueError) as info:
        model(np.zeros((1, 3, 16, 16), np.float32))
    msg = str(info.value)
    assert "se_resnet50" in msg and "layer4.0" in msg and "at least 2x2" in msg and "got 1x1" in msg
    cifar = models.create("resnet20", num_classes=10, init=False)
    with pytest.raises(ValueError, match=r"resnet20: .*layer3\.0\.conv1.*got 1x1"):
        cifar.output_shape((1, 3, 2, 2))


def test_in_channels_option():
    model = models.create("se_resnet20", num_classes=10, in_channels=1, width=4)
    with backend.use("numpy"):
        assert model(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 10)


def test_se_blocks_named_as_the_paper():
    blocks = models.create("se_resnet50", num_classes=10, init=False).se_blocks()
    assert list(blocks)[:4] == ["SE_2_1", "SE_2_2", "SE_2_3", "SE_3_1"]
    assert {"SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"} <= set(blocks) and len(blocks) == 16
    assert all(isinstance(b, SEBlock) for b in blocks.values())
    assert blocks["SE_5_3"].channels == 2048 and blocks["SE_5_3"].hidden == 128
    assert len(models.create("se_resnet20", num_classes=10).se_blocks()) == 9
    assert models.create("resnet20", num_classes=10).se_blocks() == {}


def test_excitation_is_kept_after_forward():
    model = models.create("se_resnet20", num_classes=10, width=4)
    with backend.use("numpy"):
        model(np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32))
    s = model.se_blocks()["SE_4_3"].excitation
    assert s.shape == (3, 16) and s.dtype == np.float32 and np.all((s > 0) & (s < 1))


def test_release_architecture_details():
    se50 = models.create("se_resnet50", num_classes=10, init=False)
    assert se50.layer2[0].conv1.stride == (2, 2) and se50.layer2[0].conv2.stride == (1, 1)
    tv = models.create("se_resnet50", num_classes=10, stride_on="3x3", init=False)
    assert tv.layer2[0].conv1.stride == (1, 1) and tv.layer2[0].conv2.stride == (2, 2)
    rx = models.create("se_resnext50_32x4d", num_classes=10, init=False)
    assert rx.layer1[0].conv2.groups == 32 and rx.layer1[0].conv2.out_channels == 128
    assert rx.layer2[0].conv2.stride == (2, 2)
    s154 = models.create("senet154", num_classes=10, init=False)
    assert [n for n, _ in s154.layer0.named_children()][:9] == [
        "conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3", "relu3"]
    assert s154.layer1[0].conv2.groups == 64 and s154.layer1[0].conv1.out_channels == 128
    assert s154.layer1[0].downsample[0].kernel_size == (1, 1)
    assert s154.layer2[0].downsample[0].kernel_size == (3, 3)
    assert s154.dropout.p == 0.2
    s154.eval()
    x = np.ones((1, 4), np.float32)
    assert s154.dropout(x) is x  # no dropout at eval


def test_summary_se_resnet50_macs():
    result = summary(models.create("se_resnet50", num_classes=1000, init=False), (3, 224, 224))
    assert result.output_shape == (1000,)
    assert abs(result.backbone_macs / 1e9 - 3.86) < 0.005
    assert result.macs("se", "fc") == 2_514_944  # = Eq. 5 at r = 16
    assert result.macs("se", "squeeze") == result.macs("se", "scale") == 5_519_360
    assert 0.0 < result.se_macs / result.backbone_macs < 0.005
    assert result.params == 28_088_024 and result.se_params == 2_530_992
    plain = summary(models.create("resnet50", num_classes=1000, init=False), (1, 3, 224, 224))
    assert plain.backbone_macs == result.backbone_macs and plain.se_macs == 0


def test_summary_table_rows():
    table = summary(models.create("se_resnet20", num_classes=10, init=False), (3, 32, 32)).table()
    assert "layer1.0.se_module.fc1" in table and "layer3.2.conv2" in table and "274,847" in table
    with pytest.raises(ValueError, match="se_resnet20.*layer0.conv1"):
        summary(models.create("se_resnet20", num_classes=10, init=False), (1, 32, 32))


def test_summary_command(capsys):
    assert cli.main(["summary", "se_resnet50", "--input", "3,224,224"]) == 0
    out = capsys.readouterr().out
    assert "layer4.2.se_module.scale" in out and "3.858 G" in out and "SE blocks add" in out
    assert cli.main(["summary", "resnet20", "--input", "3,32,32", "--num-classes", "10"]) == 0
    assert "272,474" in capsys.readouterr().out


def test_summary_command_errors(capsys):
    assert cli.main(["summary", "nonet", "--input", "3,32,32"]) == 2
    assert "unknown model 'nonet'" in capsys.readouterr().err
    assert cli.main(["summary", "resnet20", "--input", "3x32x32"]) == 2
    assert cli.main(["summary", "resnet20", "--input", "1,32,32"]) == 0  # in_channels follows --input
