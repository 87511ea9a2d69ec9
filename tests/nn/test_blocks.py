"""Residual blocks: the standard SE-ResNet block and its placement variants compute their formulas."""
import numpy as np
import pytest

from sescratch import backend, nn


@pytest.fixture(autouse=True)
def _numpy_kernels():
    with backend.use("numpy"):
        yield


def _relu(x):
    return np.maximum(x, 0)


def _basic(placement, se=True, **kw):
    nn.init.manual_seed(0)
    block = nn.residual_block(nn.BasicBlock, 4, 8, 2, downsample=nn.make_shortcut(4, 8, 2),
                              se={"reduction": 2} if se else None, placement=placement, **kw)
    return block.astype(np.float64).eval()


def _formula(block, x):
    """The placement's equation (blocks.py table), from the block's own children, independently composed."""
    se, p = block.se_module, block.placement
    shortcut = block.downsample(x)
    v = se(x) if p == "pre" else x
    h = _relu(block.bn1(block.conv1(v)))
    h = se(h) if p == "after_3x3" else h
    u = block.bn2(block.conv2(h))
    u = se(u) if p in ("standard", None) and se is not None else u
    s = se(shortcut) if p == "identity" else shortcut
    y = _relu(u + s)
    return se(y) if p == "post" else y


@pytest.mark.parametrize("placement", nn.PLACEMENTS)
def test_basic_block_variant_computes_its_formula(placement):
    block = _basic(placement)
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 6))
    np.testing.assert_allclose(block(x), _formula(block, x), rtol=1e-12, atol=1e-12)


def test_plain_block_has_no_se():
    block = _basic("standard", se=False)
    assert block.placement is None and block.se_module is None
    assert "se_module" not in dict(block.named_children())
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 6))
    np.testing.assert_allclose(block(x), _formula(block, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("placement", nn.PLACEMENTS)
@pytest.mark.parametrize("block_class", [nn.BasicBlock, nn.Bottleneck, nn.ResNeXtBottleneck])
def test_variants_are_explicit_subclasses_with_the_same_children(block_class, placement):
    kwargs = {"groups": 2, "base_width": 32} if block_class is nn.ResNeXtBottleneck else {}
    out = 8 * block_class.expansion
    standard = block_class(16, 8, downsample=nn.make_shortcut(16, out, 1), se={"reduction": 4}, **kwargs)
    block = nn.residual_block(block_class, 16, 8, downsample=nn.make_shortcut(16, out, 1), se={"reduction": 4},
                              placement=placement, **kwargs)
    expected_class = block_class if placement == "standard" else nn.VARIANTS[block_class, placement]
    assert type(block) is expected_class and isinstance(block, block_class)
    assert block.placement == placement and repr(block).startswith(f"{expected_class.__name__}(")
    assert [n for n, _ in block.named_children()] == [n for n, _ in standard.named_children()]
    assert set(block.state_dict()) == set(standard.state_dict())
    inner = block.conv2.out_channels
    expected = {"pre": 16, "after_3x3": inner}.get(placement, out)
    assert block.se_module.channels == expected


def test_every_block_has_every_variant():
    for block_class in (nn.BasicBlock, nn.Bottleneck, nn.ResNeXtBottleneck):
        for placement in nn.PLACEMENTS[1:]:
            variant = nn.VARIANTS[block_class, placement]
            assert issubclass(variant, block_class) and variant.placement == placement


def test_a_standard_block_refuses_another_placement():
    with pytest.raises(ValueError, match=r"BasicBlock is the 'standard' block; for placement 'pre' build "
                                         r"sescratch.nn.residual_block\(BasicBlock"):
        nn.BasicBlock(4, 4, se={"reduction": 2}, placement="pre")
    with pytest.raises(ValueError, match="residual_block: no 'pre' variant of Sequential"):
        nn.residual_block(nn.Sequential, se={"reduction": 2}, placement="pre")


def test_bad_placement_names_the_block():
    with pytest.raises(ValueError, match=r"Bottleneck: placement must be one of \('standard', 'pre'"):
        nn.Bottleneck(16, 4, se={"reduction": 4}, placement="middle")
    with pytest.raises(ValueError, match="BasicBlock: placement must be one of"):
        nn.BasicBlock(4, 4, placement="middle")
    with pytest.raises(ValueError, match="BasicBlock: placement must be one of"):
        nn.residual_block(nn.BasicBlock, 4, 4, se={"reduction": 2}, placement="middle")
