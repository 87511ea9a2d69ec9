"""``sescratch predict`` and ``sescratch export``: run and export models with released weights.

``predict IMAGE... --model NAME --weights PATH [--top 5] [--json]`` classifies images with the
release's preprocessing (:mod:`sescratch.interop.predict`), or with a training checkpoint's own
input pipeline and classes when PATH is one; ``export NAME --weights PATH --format onnx --out
FILE.onnx [--input C,H,W]`` writes an ONNX graph (:mod:`sescratch.interop.onnx_export`), by
default of the checkpoint's input size. Weights in any format
:func:`~sescratch.interop.loading.load_pretrained` reads (.npz, .safetensors, .pth/.pt), any naming
it detects, or ``pretrained:NAME`` (a checkpoint shipped with the package, as ``eval
--checkpoint`` takes it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from sescratch.cli import int_list, parse_key_values
from sescratch.errors import UsageError
from sescratch.interop.export_cli import run_export
from sescratch.train.config import BACKENDS

__all__ = ["add_commands", "run_predict", "run_export", "model_from_args", "load_images_for_analysis",
           "weights_for_training", "load_training_weights", "run_eval_weights"]

def _use_backend(name: str) -> str:
    """Select the CPU kernel family of ``--backend`` for this command; return its device."""
    from sescratch import backend

    family, device = backend.run_placement(name)
    backend.use(family)
    return device


def _weights_options(p, required: bool) -> None:
    p.add_argument("--model", required=True, help="model name (see `sescratch train --model list`)")
    p.add_argument("--weights", required=required, metavar="PATH",
                   help=".npz, .safetensors or .pth/.pt (the naming is detected: sescratch, SENet release, "
                        "timm, torchvision), a training checkpoint (its run's preprocessing and classes), "
                        "or pretrained:NAME (shipped: pretrained:se_resnet20_fashion_mnist)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: read from the weights)")
    p.add_argument("--model-option", action="append", metavar="KEY=VALUE", help="other model option (repeatable)")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="classify images with (ImageNet) weights: top-k classes and probabilities",
        description="Classify images with the preprocessing the model family's released weights expect: "
                    "for the SENet family RGB, shorter side resized to --resize (256), centre crop --crop "
                    "(224; 320 for SENet-154's second setting), ImageNet mean/std; BN-Inception and "
                    "Inception-ResNet-v2 as Cadene's pretrainedmodels (BGR 0..255, 224; [-1, 1], 299). "
                    "Top-k ImageNet classes. With a training checkpoint (last.npz, best.npz, "
                    "pretrained:NAME) as --weights, its run's pipeline instead: greyscale or RGB as it "
                    "trained, the whole image resized to its size (aspect ratio not kept), its mean/std "
                    "and padding, its class names.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG / JPEG files")
    _weights_options(p, required=True)
    p.add_argument("--top", type=int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--crop", type=int, help="centre-crop size (default the family's: 224, 299 for Inception-ResNet-v2; "
                                             "not with a training checkpoint)")
    p.add_argument("--resize", type=int, help="shorter side before cropping (default the family's for its crop, "
                                               "else crop * 256 / 224; not with a training checkpoint)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--backend", choices=BACKENDS, default="numba", help="default numba")
    p.set_defaults(func=run_predict)

    e = subparsers.add_parser("export", help="export a model to ONNX",
                              description="Write a standard ONNX graph (opset >= 17) of a model, eval mode, "
                                          "float32, batch dimension symbolic; run it with onnxruntime. Every "
                                          "model family exports: ResNet, ResNeXt, SENet, VGG, MobileNet, "
                                          "BN-Inception, Inception-ResNet-v2, ShuffleNet, with or without SE.")
    e.add_argument("name", metavar="NAME", help="model name")
    e.add_argument("--weights", metavar="PATH", help="weights to export (default: a fresh initialisation); "
                                                     "a training checkpoint or pretrained:NAME too")
    e.add_argument("--num-classes", type=int, help="classifier outputs (default: from the weights, else 1000)")
    e.add_argument("--model-option", action="append", metavar="KEY=VALUE", help="other model option (repeatable)")
    e.add_argument("--format", choices=("onnx",), default="onnx", help="only onnx")
    e.add_argument("--out", required=True, metavar="FILE.onnx", help="output file")
    e.add_argument("--input", type=int_list, default=None, metavar="C,H,W",
                   help="input shape without the batch (default: a training checkpoint's, padding "
                        "included; else 3,224,224, 3,299,299 for Inception-ResNet-v2, CIFAR models 3,32,32)")
    e.add_argument("--opset", type=int, default=17, help="ONNX opset, from 17 to the newest the installed onnx "
                                                          "and onnxruntime read (default 17)")
    e.set_defaults(func=run_export, model=None)


def resolve_weights(spec) -> str | None:
    """A ``--weights`` value as a file path: ``pretrained:NAME`` is the checkpoint shipped with the
    package (as ``eval --checkpoint`` resolves it), anything else the path given."""
    from sescratch.train.pretrained import resolve_checkpoint

    return None if spec is None else str(resolve_checkpoint(spec))


def check_num_classes(args) -> None:
    """``--num-classes``, when given, must be >= 1 (0 must not fall back to a default)."""
    num_classes = getattr(args, "num_classes", None)
    if num_classes is not None and num_classes < 1:
        raise UsageError(f"--num-classes must be an integer >= 1, got {num_classes}")


def model_from_args(args, name: str, *, default_classes: int = 1000):
    """``(model, report)`` from ``--weights`` / ``--num-classes`` / ``--model-option`` (report ``None``
    without weights)."""
    from sescratch import models
    from sescratch.interop.loading import load_pretrained

    if name not in models.list_models():
        raise UsageError(f"unknown model {name!r}; valid names: {', '.join(models.list_models())}")
    check_num_classes(args)
    options = parse_key_values(getattr(args, "model_option", None) or [], "--model-option")
    num_classes = getattr(args, "num_classes", None)
    if args.weights:
        return load_pretrained(name, resolve_weights(args.weights), num_classes=num_classes, **options)
    return models.create(name, num_classes=default_classes if num_classes is None else num_classes,
                         **options), None


def run_pipeline(args, name: str):
    """The training run's :class:`~sescratch.interop.run_input.RunPreprocessing` when ``--weights`` is
    a training checkpoint (None for other weights files), checked against ``--model``."""
    from sescratch.interop.predict import run_preprocessing

    run = run_preprocessing(resolve_weights(args.weights)) if args.weights else None
    if run is not None and run.model is not None and run.model != name:
        raise UsageError(f"--weights {args.weights} is a checkpoint of a {run.model} run; got --model {name}")
    return run


def _images_settings(args, name: str):
    """``(settings, run)``: how ``predict`` / ``excitations --images`` prepare images for ``--weights``:
    a training checkpoint's pipeline (``--crop`` / ``--resize`` refused: it fixes its own size),
    else the family's :class:`~sescratch.interop.predict.Preprocessing` (``run`` None)."""
    from sescratch.interop.predict import preprocessing_for

    run = run_pipeline(args, name)
    if run is None:
        return preprocessing_for(name), None
    given = [f"--{k} {getattr(args, k)}" for k in ("crop", "resize") if getattr(args, k, None) is not None]
    if given:
        _, H, W = run.image_shape
        raise UsageError(f"{' '.join(given)}: a training checkpoint's images are resized whole to its "
                         f"{H}x{W}; --crop and --resize apply to ImageNet weights only")
    return run, run  # the run's pipeline is the settings


def weights_for_training(config, path):
    """``sescratch train --weights PATH``: ``(config, prepared)``, the config carrying the
    architecture options of the file's zoo (so a resumed run rebuilds the same network)."""
    import dataclasses

    from sescratch.interop.loading import prepare_weights
    from sescratch.train.config import model_options

    if config.resume:
        raise UsageError("--weights starts a run from a weights file; --resume continues a run from OUT/last.npz")
    asked = model_options(config)  # with the run's reduction: a checkpoint's must agree
    state, report = prepare_weights(config.model, path, asked)
    implied = {k: v for k, v in report.options.items() if asked.get(k) != v}
    config = dataclasses.replace(config, model_options={**config.model_options, **implied})
    return config.validate(), (state, report)


def load_training_weights(trainer, prepared, *, init_missing: bool) -> None:
    """Copy the prepared weights into ``trainer.model`` (before the first step) and print the report."""
    from sescratch.interop.loading import load_state

    state, report = prepared
    load_state(trainer.model, state, naming=report.naming, init_missing=init_missing, report=report,
               source=report.path)
    print(report, flush=True)


def run_eval_weights(args) -> int:
    """``sescratch eval --weights PATH --model NAME --dataset NAME``: a weights file on a test set,
    normalised as the run that made it normalised its images when PATH is a training checkpoint
    (its recorded mean, std and pad_to: a subset run's statistics are its subset's), else with the
    training split's channel statistics (as a training run of it would)."""
    from sescratch.data import Transform, load_dataset
    from sescratch.train import rundir
    from sescratch.train.evaluation import evaluate
    from sescratch.train.metrics import plot_confusion
    from sescratch.train.pretrained import PREFIX

    if not (args.model and args.dataset):
        raise UsageError("eval --weights needs --model NAME and --dataset NAME (a checkpoint stores both; "
                         "a weights file does not)")
    shipped = args.weights.startswith(PREFIX)  # pretrained:NAME, a file inside the package
    out = Path(args.out) if args.out else Path(".") if shipped else Path(args.weights).parent
    rundir.check_writable(out)  # where the confusion matrix goes: checked before the evaluation
    device = _use_backend(args.backend)
    data = load_dataset(args.dataset, data_dir=args.data_dir, download=args.download)
    model, report = model_from_args(args, args.model)
    print(report, file=sys.stderr)
    if model.last_linear.out_features != data.num_classes:
        raise UsageError(f"{args.weights} has {model.last_linear.out_features} classes, "
                         f"{args.dataset} {data.num_classes}")
    run = run_pipeline(args, args.model)
    if run is not None:
        transform = Transform(run.mean, run.std, pad_to=run.pad_to, dtype=np.dtype(run.dtype).type)
    else:
        transform = Transform(*(list(map(float, v)) for v in data.channel_stats()))
    result = evaluate(model.to(device), data.x_test, data.y_test, transform,
                      num_classes=data.num_classes, batch_size=args.batch_size, device=device)
    print(f"{args.model} ({args.weights}) on {args.dataset} test ({result.count} images)")
    print(result.report(data.classes))
    png = plot_confusion(result.confusion, data.classes, out / f"confusion_{args.dataset}.png",
                         title=f"{args.model} on {args.dataset}: top-1 error {100 * result.top1_error:.2f}%")
    print(f"  confusion matrix: {png}")
    return 0


def load_images_for_analysis(args):
    """``(model, x, labels, classes)`` for ``sescratch excitations --images DIR --model M --weights W``
    (the images prepared for W: a family's preprocessing, or a training checkpoint's pipeline)."""
    from sescratch.interop.predict import load_image_folder

    if not (args.model and args.weights):
        raise UsageError("--images needs --model NAME and --weights PATH (e.g. ImageNet weights of se_resnet50)")
    settings, _ = _images_settings(args, args.model)  # a run's pipeline: --crop / --resize refused, None
    x, labels, classes, _ = load_image_folder(args.images, crop=args.crop, resize=args.resize, settings=settings)
    device = _use_backend(args.backend)
    model, report = model_from_args(args, args.model)
    print(report)
    if not model.se_blocks():
        raise UsageError(f"{args.model} has no SE blocks to analyse")
    return model.to(device), x, labels, classes


def run_predict(args) -> int:
    from sescratch.interop.predict import predict, prepare, read_images

    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    check_num_classes(args)
    settings, run = _images_settings(args, args.model)
    crop = resize = None
    if run is None:
        crop, resize = settings.sizes(args.crop, args.resize)
        if resize < crop:
            raise UsageError(f"--resize ({resize}) must be >= --crop ({crop})")
    described = settings.describe() if run else settings.describe(crop, resize)
    images = read_images(args.images)  # every image read before the model
    device = _use_backend(args.backend)
    model, report = model_from_args(args, args.model)
    x = np.stack([prepare(image, crop, resize, settings=settings) for image in images])
    results = predict(model.to(device), x, top=args.top, device=device,
                      class_names=_run_classes(run, model, args.weights))
    if args.json:
        json.dump({"model": args.model, "weights": args.weights, "crop": crop, "resize": resize,
                   "input_shape": list(x.shape[1:]), "preprocessing": described,
                   "predictions": [{"image": str(p), "top": r} for p, r in zip(args.images, results)]},
                  sys.stdout, indent=1)
        print()
        return 0
    print(report, file=sys.stderr)
    print(f"preprocessing: {described}", file=sys.stderr)
    for path, top in zip(args.images, results):
        print(path)
        for rank, r in enumerate(top, start=1):
            where = f"{r['wnid']}, class {r['index']}" if r["wnid"] else f"class {r['index']}"
            print(f"  {rank}. {100 * r['probability']:6.2f}%  {r['class']}  ({where})")
    return 0


def _run_classes(run, model, weights):
    """The class names of a training run (None otherwise: ImageNet's or "class i")."""
    if run is None:
        return None
    outputs = model.last_linear.out_features
    if outputs != len(run.classes):
        raise UsageError(f"--weights {weights}: the run named {len(run.classes)} classes, the model has "
                         f"{outputs} outputs (leave --num-classes out)")
    return list(run.classes)
