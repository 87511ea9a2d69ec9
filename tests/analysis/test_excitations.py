"""Excitation statistics (Fig. 6 / Fig. 7): a hand-computed case and a direct check on a model."""
import numpy as np
import pytest

from sescratch import models
from sescratch.analysis import collect_excitations, default_blocks, excitation_statistics
from sescratch.data import Transform, make_synthetic
from sescratch.errors import UsageError


def test_statistics_by_hand():
    s = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [10.0, 10.0], [7.0, 7.0]])  # N,C
    labels = np.array([0, 0, 1, 1, 1])
    stats = excitation_statistics({"SE_2_1": s}, labels, ["a", "b"], chosen=[1, 0])
    b = stats["blocks"]["SE_2_1"]
    assert stats["classes"] == ["b", "a"] and stats["images_per_class"] == {"b": 3, "a": 2}
    assert b["per_class"]["a"] == [1.0, 2.0]
    assert b["per_class"]["b"] == [7.0, 22.0 / 3]
    assert b["all_classes"] == pytest.approx([4.0, (2.0 + 22.0 / 3) / 2])  # mean of the class means
    assert b["class_spread"] == pytest.approx(np.mean([3.0, (22.0 / 3 - 2.0) / 2]))
    assert stats["distribution_class"] == "b"  # the first chosen class
    assert b["distribution"]["median"] == [7.0, 7.0]
    assert b["distribution"]["q1"] == [5.5, 6.0] and b["distribution"]["q3"] == [8.5, 8.5]
    picked = excitation_statistics({"SE_2_1": s}, labels, ["a", "b"], [0], channels=[1])
    assert picked["blocks"]["SE_2_1"]["per_class"]["a"] == [2.0]
    assert picked["blocks"]["SE_2_1"]["channels"] == [1]
    with pytest.raises(UsageError, match="class 'c' has no test images"):
        excitation_statistics({"SE_2_1": s}, labels, ["a", "b", "c"], [2])


def test_class_means_equal_a_direct_forward_over_the_class_images():
    data = make_synthetic(60, 40, num_classes=4, size=8, seed=3)
    model = models.create("se_resnet20", num_classes=4, in_channels=1, width=4, reduction=2, seed=1)
    transform = Transform([0.5], [0.25])
    s = collect_excitations(model, data.x_test, transform, batch_size=16)  # batches cross classes
    assert list(s) == list(model.se_blocks()) and s["SE_4_3"].shape == (40, 16)
    stats = excitation_statistics(s, data.y_test, list(data.classes), chosen=[2, 0])
    model.eval()
    for k in (2, 0):
        model(transform(data.x_test[data.y_test == k]))
        for name, block in model.se_blocks().items():
            direct = np.asarray(block.excitation, dtype=np.float64).mean(axis=0)  # C
            np.testing.assert_allclose(stats["blocks"][name]["per_class"][data.classes[k]], direct,
                                       rtol=1e-5, atol=1e-6, err_msg=f"{name}, class {k}")
    assert model.training is False  # collect_excitations restored the mode it found (eval here)
    values = s["SE_2_1"]
    assert np.all((values > 0) & (values < 1))  # sigmoid gates


def test_default_blocks_follow_the_paper():
    resnet50 = [f"SE_{s}_{b}" for s, n in ((2, 3), (3, 4), (4, 6), (5, 3)) for b in range(1, n + 1)]
    assert default_blocks(resnet50) == ["SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"]
    resnet20 = [f"SE_{s}_{b}" for s in (2, 3, 4) for b in (1, 2, 3)]
    assert default_blocks(resnet20) == ["SE_2_3", "SE_3_3", "SE_4_1", "SE_4_2", "SE_4_3"]
