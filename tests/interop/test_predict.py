"""``sescratch predict``: the release's preprocessing, ImageNet class names, top-k, clear errors."""
import json

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from sescratch import models  # noqa: E402
from sescratch.cli import main  # noqa: E402
from sescratch.errors import DataError  # noqa: E402
from sescratch.interop.predict import (IMAGENET_MEAN, IMAGENET_STD, default_resize, imagenet_classes,  # noqa: E402
                                       load_image, load_images, predict, preprocess)
from sescratch.interop.weights import save_weights  # noqa: E402


def test_the_1000_imagenet_classes_in_index_order():
    rows = imagenet_classes()
    assert len(rows) == 1000 and len({w for w, _ in rows}) == 1000
    assert [w for w, _ in rows] == sorted(w for w, _ in rows)  # ILSVRC-2012 indices sort the WordNet ids
    # the paper's Fig. 6 classes, and two well-known duplicates of the first lemma
    for index, name in ((0, "tench"), (1, "goldfish"), (254, "pug"), (404, "airliner"), (972, "cliff"),
                        (134, "crane"), (517, "crane"), (999, "toilet tissue")):
        assert rows[index][1].split(",")[0] == name, index
    assert rows[1][0] == "n01443537"


def test_constant_image_normalises_per_channel():
    image = Image.new("RGB", (300, 280), (255, 128, 0))
    x = preprocess(image)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    for c, value in enumerate((255, 128, 0)):
        np.testing.assert_allclose(x[c], (value / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], rtol=1e-6)


def test_centre_crop_of_an_image_already_at_the_resize_size():
    pixels = np.random.default_rng(0).integers(0, 256, (256, 300, 3), dtype=np.uint8)  # H=256 W=300
    x = preprocess(Image.fromarray(pixels))
    expected = pixels[16:240, 38:262].astype(np.float32) / 255  # top = 32/2, left = 76/2
    expected = (expected - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    np.testing.assert_allclose(x, expected.transpose(2, 0, 1), rtol=1e-6, atol=1e-6)


def test_shorter_side_is_resized_and_senet154_setting():
    assert default_resize(224) == 256 and default_resize(320) == 366
    tall = Image.new("RGB", (200, 500), (10, 20, 30))
    assert preprocess(tall).shape == (3, 224, 224)
    assert preprocess(tall, crop=320).shape == (3, 320, 320)
    with pytest.raises(ValueError, match="resize"):
        preprocess(tall, crop=224, resize=200)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_any_pillow_mode_becomes_rgb(tmp_path, mode):
    path = tmp_path / "img.png"
    Image.new(mode, (64, 48)).save(path)
    assert load_image(path).mode == "RGB"


def test_missing_and_unreadable_images_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_images([tmp_path / "nope.jpg"])
    (tmp_path / "fake.jpg").write_text("not an image")
    with pytest.raises(DataError, match="fake.jpg: not a readable image"):
        load_image(tmp_path / "fake.jpg")


def test_predict_returns_sorted_probabilities_and_names():
    model = models.create("se_resnet20", num_classes=1000, seed=0)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    results = predict(model, x, top=1000)
    assert len(results) == 3 and model.training  # mode restored
    for top in results:
        p = [r["probability"] for r in top]
        assert p == sorted(p, reverse=True) and abs(sum(p) - 1) < 1e-9
        assert top[0]["class"] == imagenet_classes()[top[0]["index"]][1]
    small = predict(models.create("se_resnet20", num_classes=10), x, top=3)
    assert small[0][0]["class"].startswith("class ") and len(small[0]) == 3


@pytest.fixture
def weights_and_images(tmp_path):
    model = models.create("se_resnet20", num_classes=1000, seed=4)
    weights = save_weights(model, tmp_path / "se20.npz")
    rng = np.random.default_rng(1)
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(png)
    Image.fromarray(rng.integers(0, 256, (60, 45, 3), dtype=np.uint8)).save(jpg, quality=90)
    return model, weights, png, jpg


def test_predict_command_json(weights_and_images, capsys):
    model, weights, png, jpg = weights_and_images
    code = main(["predict", str(png), str(jpg), "--model", "se_resnet20", "--weights", str(weights),
                 "--crop", "32", "--top", "3", "--json", "--backend", "numpy"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["image"] for p in out["predictions"]] == [str(png), str(jpg)]
    expected = predict(model, load_images([png, jpg], crop=32), top=3)
    for got, want in zip(out["predictions"], expected):
        assert [r["index"] for r in got["top"]] == [r["index"] for r in want]
        assert got["top"][0]["wnid"].startswith("n")
        np.testing.assert_allclose([r["probability"] for r in got["top"]], [r["probability"] for r in want],
                                   rtol=1e-5)


def test_predict_command_text(weights_and_images, capsys):
    _, weights, png, _ = weights_and_images
    assert main(["predict", str(png), "--model", "se_resnet20", "--weights", str(weights), "--crop", "32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(png) and len(lines) == 6 and lines[1].lstrip().startswith("1.")


def test_predict_command_missing_image(weights_and_images, capsys, tmp_path):
    _, weights, png, _ = weights_and_images
    code = main(["predict", str(png), str(tmp_path / "gone.jpg"), "--model", "se_resnet20",
                 "--weights", str(weights)])
    assert code == 1 and "gone.jpg" in capsys.readouterr().err


def test_each_family_gets_the_preprocessing_of_its_released_weights():
    from sescratch.interop.predict import preprocessing_for

    red = Image.new("RGB", (300, 260), (255, 0, 0))
    senet = preprocess(red, settings=preprocessing_for("se_resnet50"))
    np.testing.assert_array_equal(senet, preprocess(red))  # the SENet release's, as before
    # Cadene's BN-Inception port: BGR, 0..255, less (104, 117, 128), std 1
    bn = preprocess(red, settings=preprocessing_for("bn_inception"))
    assert bn.shape == (3, 224, 224)
    np.testing.assert_array_equal(bn[:, 10, 10], [-104.0, -117.0, 127.0])
    # Inception-ResNet-v2: a 299 crop of the image with its shorter side at floor(299 / 0.875) = 341, in [-1, 1]
    irv2 = preprocessing_for("inception_resnet_v2")
    assert irv2.sizes() == (299, 341) and irv2.sizes(320) == (320, default_resize(320))
    np.testing.assert_array_equal(preprocess(red, settings=irv2)[:, 10, 10], [1.0, -1.0, -1.0])
    assert preprocessing_for("se_bn_inception") == preprocessing_for("bn_inception")  # SE variants: the base's
    assert preprocessing_for("bn_inception_cifar") == preprocessing_for("se_resnet20")  # no released weights


def test_predict_command_reports_the_preprocessing(weights_and_images, capsys):
    _, weights, png, _ = weights_and_images
    assert main(["predict", str(png), "--model", "se_resnet20", "--weights", str(weights), "--crop", "32",
                 "--json", "--backend", "numpy"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["crop"] == 32 and out["resize"] == default_resize(32) and out["preprocessing"].startswith("RGB")
    code = main(["predict", str(png), "--model", "se_resnet20", "--weights", str(weights), "--crop", "32",
                 "--resize", "16"])
    assert code == 2 and "--resize (16) must be >= --crop (32)" in capsys.readouterr().err


def test_sixteen_bit_greyscale_is_scaled_and_float_images_are_refused(tmp_path):
    base = np.random.default_rng(0).integers(0, 256, (30, 40), dtype=np.uint8)
    Image.fromarray(base, "L").save(tmp_path / "g8.png")
    Image.fromarray(base.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # the same picture, 16-bit
    eight, sixteen = (np.asarray(load_image(tmp_path / f)) for f in ("g8.png", "g16.png"))
    np.testing.assert_array_equal(sixteen, eight)
    Image.fromarray(base.astype(np.float32) / 255, "F").save(tmp_path / "f.tif")
    with pytest.raises(DataError, match="floating-point pixels"):
        load_image(tmp_path / "f.tif")
