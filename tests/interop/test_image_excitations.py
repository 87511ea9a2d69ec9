"""``sescratch excitations --images DIR``: Fig. 6 for the user's own images with ImageNet weights."""
import json

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from sescratch import models  # noqa: E402
from sescratch.cli import main  # noqa: E402
from sescratch.errors import DataError  # noqa: E402
from sescratch.interop.predict import load_image_folder  # noqa: E402
from sescratch.interop.weights import save_weights  # noqa: E402


def image_folder(root, classes=("goldfish", "pug", "cliff"), per_class=2, size=(40, 36)):
    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size[::-1] + (3,), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_image_folder_classes_are_subfolders(tmp_path):
    root = image_folder(tmp_path / "imgs")
    (root / "notes.txt").write_text("ignored")
    x, labels, classes, paths = load_image_folder(root, crop=32)
    assert classes == ["cliff", "goldfish", "pug"] and x.shape == (6, 3, 32, 32)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2] and paths[0].parent.name == "cliff"
    with pytest.raises(DataError, match="no image files"):
        (tmp_path / "empty").mkdir()
        load_image_folder(tmp_path / "empty")


@pytest.mark.slow
def test_excitations_on_images_writes_fig6(tmp_path, capsys):
    root = image_folder(tmp_path / "imgs")
    weights = save_weights(models.create("se_resnet50", num_classes=1000, seed=1), tmp_path / "se50.npz")
    out = tmp_path / "fig6"
    code = main(["excitations", "--images", str(root), "--model", "se_resnet50", "--weights", str(weights),
                 "--crop", "64", "--out", str(out), "--backend", "numpy"])
    assert code == 0
    stats = json.loads((out / "excitations.json").read_text())
    assert list(stats["blocks"]) == ["SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"]
    assert stats["classes"] == ["cliff", "goldfish", "pug"]
    assert len(stats["blocks"]["SE_5_3"]["per_class"]["pug"]) == 2048
    assert (out / "excitations.png").stat().st_size > 0
    assert "SE_4_6" in capsys.readouterr().out


def test_excitations_needs_checkpoint_or_images(capsys):
    assert main(["excitations"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
