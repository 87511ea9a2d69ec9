"""``sescratch predict`` of a training checkpoint: its run's input pipeline, classes and files.

A checkpoint passed as ``--weights`` must prepare an image file exactly as the run's test
transform prepares the same picture from the dataset (channels, size, [0, 1] scaling, padding,
mean/std), so predict's probabilities are the model's softmax on that test image.
"""
import json

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from sescratch.cli import main  # noqa: E402
from sescratch.interop.predict import RunPreprocessing, load_image, run_preprocessing  # noqa: E402
from sescratch.train import TrainConfig, fit  # noqa: E402
from sescratch.train.evaluation import load_for_evaluation  # noqa: E402

RUNS = {  # tiny runs, one epoch: what matters is the pipeline, not the accuracy
    "greyscale": dict(dataset="fashion-mnist-subset", subset=100, test_subset=50),
    "greyscale_padded": dict(dataset="fashion-mnist-subset", subset=100, test_subset=50, pad_to=32),
    "rgb": dict(dataset="synthetic", dataset_options={"channels": 3, "size": 32, "n_train": 64, "n_test": 20}),
}


@pytest.fixture(autouse=True)
def _kernel_family_restored():
    """``--backend numpy`` (and ``load_for_evaluation``) switch the CPU kernels for the whole
    process; the tests after these ones must run on the family they started with."""
    from sescratch import backend

    with backend.use(backend.cpu_family()):
        yield


@pytest.fixture(scope="module", params=sorted(RUNS))
def run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    config = TrainConfig(model="se_resnet20", reduction=4, model_options={"width": 4}, epochs=1, batch_size=32,
                         progress=False, out_dir=str(out / "run"), **RUNS[request.param])
    fit(config.validate())
    return request.param, out / "run" / "last.npz", out


def _png(picture: np.ndarray, path) -> str:
    """A uint8 (C, H, W) dataset image as a PNG file (greyscale or RGB)."""
    if picture.shape[0] == 1:
        Image.fromarray(picture[0], "L").save(path)
    else:
        Image.fromarray(picture.transpose(1, 2, 0), "RGB").save(path)
    return str(path)


def _softmax(logits):
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def test_predict_equals_the_model_on_the_run_test_transform(run, capsys):
    _, ckpt, out = run
    ev = load_for_evaluation(ckpt, backend="numpy")
    pictures = ev.data.x_test[:3]  # uint8 N,C,H,W
    files = [_png(p, out / f"test{i}.png") for i, p in enumerate(pictures)]
    ev.model.eval()
    expected = _softmax(np.asarray(ev.model(ev.transform(pictures))))  # N,K
    K = expected.shape[1]
    code = main(["predict", *files, "--model", "se_resnet20", "--weights", str(ckpt), "--top", str(K),
                 "--json", "--backend", "numpy"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    for want, got in zip(expected, result["predictions"]):
        probabilities = np.zeros(K)
        for r in got["top"]:
            probabilities[r["index"]] = r["probability"]
        np.testing.assert_allclose(probabilities, want, rtol=1e-5, atol=1e-6)
        assert [r["class"] for r in got["top"]] == [ev.data.classes[r["index"]] for r in got["top"]]  # the run's
    assert result["input_shape"] == list(ev.transform(pictures[:1]).shape[1:])


def test_the_preprocessing_line_names_the_run_pipeline(run, capsys):
    name, ckpt, out = run
    picture = load_for_evaluation(ckpt, backend="numpy").data.x_test[0]
    assert main(["predict", _png(picture, out / "one.png"), "--model", "se_resnet20", "--weights", str(ckpt),
                 "--backend", "numpy"]) == 0
    captured = capsys.readouterr()
    line = next(x for x in captured.err.splitlines() if x.startswith("preprocessing:"))
    C, H, W = picture.shape
    assert ("greyscale" if C == 1 else "RGB") in line and f"resized to {H}x{W}" in line
    assert ("zero-padded to 32x32" in line) == (name == "greyscale_padded")
    assert "ImageNet" not in line and "centre crop" not in line


def test_another_size_and_mode_are_converted_and_resized_whole(run, tmp_path):
    _, ckpt, _ = run
    pipeline = run_preprocessing(ckpt)
    C, H, W = pipeline.image_shape
    rgba = np.random.default_rng(0).integers(0, 256, (3 * H, 2 * W, 4), dtype=np.uint8)  # another aspect ratio
    Image.fromarray(rgba, "RGBA").save(tmp_path / "big.png")
    x = pipeline(load_image(tmp_path / "big.png"))
    assert x.shape == pipeline.input_shape and x.dtype == np.float32
    # a constant picture: (value / 255 - mean) / std inside, and padding at the normalised 0 around it
    flat = pipeline(Image.new("RGB", (W + 7, H + 3), (200, 200, 200)))
    inside = flat if pipeline.pad_to is None else flat[:, 2:-2, 2:-2]
    for c in range(C):
        np.testing.assert_allclose(inside[c], (200 / 255 - pipeline.mean[c]) / pipeline.std[c], rtol=1e-5)
    if pipeline.pad_to is not None:
        np.testing.assert_allclose(flat[:, 0, 0], -np.array(pipeline.mean) / np.array(pipeline.std), rtol=1e-5)


def test_crop_resize_and_another_model_are_refused(run, tmp_path, capsys):
    _, ckpt, _ = run
    Image.new("RGB", (40, 40)).save(tmp_path / "x.png")
    base = ["predict", str(tmp_path / "x.png"), "--weights", str(ckpt)]
    assert main(base + ["--model", "se_resnet20", "--crop", "24"]) == 2
    assert "--crop 24: a training checkpoint's images are resized whole" in capsys.readouterr().err
    assert main(base + ["--model", "resnet20"]) == 2
    assert "a checkpoint of a se_resnet20 run; got --model resnet20" in capsys.readouterr().err


def test_other_weights_files_have_no_run_pipeline(tmp_path):
    from sescratch import models
    from sescratch.interop.weights import save_weights

    assert run_preprocessing(save_weights(models.create("resnet20", num_classes=10), tmp_path / "w.npz")) is None
    assert run_preprocessing(tmp_path / "missing.npz") is None


def test_a_checkpoint_on_other_than_1_or_3_channels_is_refused():
    from sescratch.errors import DataError

    two = RunPreprocessing((2, 8, 8), (0.5, 0.5), (0.2, 0.2), None, ("a", "b"))
    assert two.input_shape == (2, 8, 8)  # export needs no image mode
    with pytest.raises(DataError, match="2 channels; image files give 1"):
        two(Image.new("RGB", (8, 8)))


def test_a_checkpoint_without_its_pipeline_is_a_clear_error(tmp_path):
    from sescratch.errors import DataError

    meta = {"epoch": 1, "classes": ["a", "b"], "normalization": {"mean": [0.5], "std": [0.2], "pad_to": None}}
    np.savez(tmp_path / "old.npz", **{"model/w": np.zeros(2), "meta": np.array(json.dumps(meta))})
    with pytest.raises(DataError, match=r"old.npz: meta 'image_shape' must be \[C, H, W\].*cannot be rebuilt"):
        run_preprocessing(tmp_path / "old.npz")


def test_predict_checks_top_and_class_names():
    from sescratch import models
    from sescratch.interop.predict import predict

    model = models.create("resnet20", num_classes=4, in_channels=1, seed=0)
    x = np.zeros((1, 1, 28, 28), np.float32)
    for top in (0, -1):  # no silent "at least 1"
        with pytest.raises(ValueError, match=f"top must be an integer >= 1, got {top}"):
            predict(model, x, top=top)
    with pytest.raises(ValueError, match="class_names has 3 names, the model 4 outputs"):
        predict(model, x, class_names=["a", "b", "c"])


@pytest.fixture
def shipped():
    from sescratch.train.pretrained import PRETRAINED, WEIGHTS_DIR

    if not (WEIGHTS_DIR / PRETRAINED["se_resnet20_fashion_mnist"]).is_file():
        pytest.skip("the shipped checkpoint is not installed")
    from sescratch.train import load_pretrained

    return load_pretrained("se_resnet20_fashion_mnist", backend="numpy")


def test_predict_takes_pretrained_name_as_weights(shipped, tmp_path, capsys):
    from sescratch.data import load_dataset

    pictures = load_dataset("fashion-mnist-subset").x_test[:2]
    files = [_png(p, tmp_path / f"fm{i}.png") for i, p in enumerate(pictures)]
    code = main(["predict", *files, "--model", "se_resnet20", "--weights", "pretrained:se_resnet20_fashion_mnist",
                 "--top", "10", "--json", "--backend", "numpy"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    expected = _softmax(np.asarray(shipped.model(shipped.transform(pictures))))
    for want, got in zip(expected, result["predictions"]):
        assert [r["class"] for r in got["top"]] == [shipped.classes[i] for i in np.argsort(-want, kind="stable")]
        np.testing.assert_allclose([r["probability"] for r in got["top"]], np.sort(want)[::-1], rtol=1e-5, atol=1e-6)


def test_eval_takes_pretrained_name_as_weights(shipped, tmp_path, capsys):
    code = main(["eval", "--weights", "pretrained:se_resnet20_fashion_mnist", "--model", "se_resnet20",
                 "--dataset", "fashion-mnist-subset", "--backend", "numpy", "--out", str(tmp_path)])
    assert code == 0 and (tmp_path / "confusion_fashion-mnist-subset.png").is_file()
    assert main(["predict", str(tmp_path / "confusion_fashion-mnist-subset.png"), "--model", "se_resnet20",
                 "--weights", "pretrained:nope"]) == 2
    assert "unknown pretrained checkpoint 'nope'" in capsys.readouterr().err


def test_excitations_on_images_use_the_checkpoint_pipeline(run, tmp_path):
    from types import SimpleNamespace

    from sescratch.interop.cli import load_images_for_analysis

    _, ckpt, _ = run
    ev = load_for_evaluation(ckpt, backend="numpy")
    for k in range(2):
        (tmp_path / f"class{k}").mkdir()
        _png(ev.data.x_test[k], tmp_path / f"class{k}" / "a.png")
    args = SimpleNamespace(images=str(tmp_path), model="se_resnet20", weights=str(ckpt), crop=None, resize=None,
                           backend="numpy", num_classes=None, model_option=None)
    _, x, labels, classes = load_images_for_analysis(args)
    np.testing.assert_allclose(x, ev.transform(ev.data.x_test[:2]), rtol=1e-6, atol=1e-6)
    assert list(labels) == [0, 1] and classes == ["class0", "class1"]


def test_eval_of_a_checkpoint_as_weights_uses_the_runs_normalisation(run, tmp_path, capsys):
    """A subset run's statistics are its subset's: ``eval --weights CKPT`` (on the whole test
    split) must normalise as the run did."""
    from sescratch.data import load_dataset
    from sescratch.train.evaluation import evaluate

    name, ckpt, _ = run
    ev = load_for_evaluation(ckpt, backend="numpy")
    if ev.config.dataset_options:
        pytest.skip("eval --weights loads a dataset by name, without its options")
    data = load_dataset(ev.config.dataset)
    want = evaluate(ev.model, data.x_test, data.y_test, ev.transform, num_classes=data.num_classes)
    assert main(["eval", "--weights", str(ckpt), "--model", ev.config.model, "--dataset", ev.config.dataset,
                 "--backend", "numpy", "--out", str(tmp_path)]) == 0
    assert f"top-1 error {100 * want.top1_error:.2f}%" in capsys.readouterr().out
