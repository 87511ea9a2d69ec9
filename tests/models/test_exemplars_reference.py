"""BN-Inception and Inception-ResNet-v2 against the published definitions they claim to be:
Cadene's ``pretrainedmodels`` (``bninception.py``, ``inceptionresnetv2.py``), an independent
PyTorch code. Our weights are copied into theirs and the eval-mode logits compared in float64.

Skipped without torch or without ``pretrainedmodels`` (install it with
``pip install --no-deps pretrainedmodels``: only these two files are read, straight from the
installed package, without importing its torchvision-based ``__init__``).
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from sescratch import models
from sescratch.summary import summary

torch = pytest.importorskip("torch")


def _cadene(module_name):
    spec = importlib.util.find_spec("pretrainedmodels")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pretrainedmodels is not installed (pip install --no-deps pretrainedmodels)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / f"{module_name}.py"
    file_spec = importlib.util.spec_from_file_location(f"_cadene_{module_name}", path)
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module


def _randomised(name, seed):
    """Our model in eval mode, float64, with random BN statistics (so BN is not the identity)."""
    model = models.create(name, num_classes=1000, seed=seed).astype(np.float64).eval()
    rng = np.random.default_rng(seed)
    for module in model.modules():
        if hasattr(module, "running_var"):
            module.running_mean[...] = rng.normal(0, 0.1, module.running_mean.shape)
            module.running_var[...] = rng.uniform(0.5, 1.5, module.running_var.shape)
            module.weight.data[...] = rng.uniform(0.5, 1.5, module.weight.data.shape)
            module.bias.data[...] = rng.normal(0, 0.1, module.bias.data.shape)
    return model


def _copy_in_order(ours, theirs):
    """Parameters and buffers in definition order: both codes define the layers in the same order."""
    mine = [p.data for _, p in ours.named_parameters()] + [b for n, b in ours.named_buffers()
                                                         if not n.endswith("num_batches_tracked")]
    targets = [p for _, p in theirs.named_parameters()] + [b for n, b in theirs.named_buffers()
                                                           if not n.endswith("num_batches_tracked")]
    assert len(mine) == len(targets)
    with torch.no_grad():
        for a, t in zip(mine, targets):
            assert tuple(a.shape) == tuple(t.shape)
            t.copy_(torch.from_numpy(np.ascontiguousarray(a)))


def _torch_macs(module, shape):
    """Conv and FC multiply-accumulates of one example, counted by hooks on the torch layers."""
    total = [0]

    def hook(layer, inputs, output):
        if isinstance(layer, torch.nn.Conv2d):
            kh, kw = layer.kernel_size
            total[0] += output[0].numel() * layer.in_channels // layer.groups * kh * kw
        else:
            total[0] += layer.in_features * layer.out_features

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        module(torch.zeros((1,) + shape, dtype=torch.float64))
    for h in handles:
        h.remove()
    return total[0]


def _compare(ours, theirs, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    got = ours(x)
    assert np.abs(got - expected).max() <= 1e-9 * np.abs(expected).max()


@pytest.mark.slow
def test_bn_inception_is_cadenes():
    ref = _cadene("bninception").BNInception(num_classes=1000).double().eval()
    ours = _randomised("bn_inception", 3)
    names = [n for n, _ in ref.named_parameters()]
    assert names[:2] == ["conv1_7x7_s2.weight", "conv1_7x7_s2.bias"]
    _copy_in_order(ours, ref)
    _compare(ours, ref, (1, 3, 224, 224), 3)  # 224: the port's 7x7 global pool, ceil_mode pools
    assert _torch_macs(ref, (3, 224, 224)) == summary(ours, (3, 224, 224)).backbone_macs == 2_032_600_064


@pytest.mark.slow
def test_inception_resnet_v2_is_cadenes_with_the_same_names():
    ref = _cadene("inceptionresnetv2").InceptionResNetV2(num_classes=1000).double().eval()
    ours = _randomised("inception_resnet_v2", 4)
    theirs_state = ref.state_dict()
    assert set(theirs_state) == set(ours.state_dict())  # the same dotted names, one to one
    ref.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ours.state_dict().items()})
    ref.avgpool_1a = torch.nn.AdaptiveAvgPool2d(1)  # theirs is 8x8 at 299; ours is global
    _compare(ours, ref, (1, 3, 107, 107), 4)  # the smallest grid every branch fits, at 1/8 the cost
    assert _torch_macs(ref, (3, 107, 107)) == summary(ours, (3, 107, 107)).backbone_macs
