"""Checkpoints shipped with the package: trained once, offline, so that a learner can look at a
trained network in seconds (tutorial 09) instead of training one first.

* ``se_resnet20_fashion_mnist``: SE-ResNet-20 (16/32/64 channels, r = 4: SE hidden widths 4/8/16)
  trained on the full Fashion-MNIST (60,000 images) for 15 epochs with the default recipe;
* ``se_resnet20_fashion_mnist_wd1e4``: the same with weight decay 1e-4 (the paper's) instead of
  5e-4, whose SE blocks all stay active.

The commands, logs and test accuracies are in ``docs/pretrained.md``.

Each file is an ordinary training checkpoint (:mod:`sescratch.train.checkpoint`) without the
optimiser's momentum buffers (:func:`export_pretrained`), so everything that reads a checkpoint
reads it: ``sescratch eval --checkpoint pretrained:se_resnet20_fashion_mnist --dataset
fashion-mnist-subset``, ``sescratch excitations --checkpoint pretrained:...``, or in Python::

    from sescratch.train import load_pretrained
    net = load_pretrained("se_resnet20_fashion_mnist")   # model in eval mode, its normalisation
    logits = net.model(net.transform(images_uint8))      # (N, 1, 28, 28) uint8 -> (N, 10)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from sescratch.errors import UsageError

__all__ = ["PRETRAINED", "PREFIX", "Pretrained", "list_pretrained", "pretrained_path", "resolve_checkpoint",
           "load_pretrained", "export_pretrained"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PRETRAINED = {  # name -> file in weights/
    "se_resnet20_fashion_mnist": "se_resnet20_fashion_mnist.npz",
    "se_resnet20_fashion_mnist_wd1e4": "se_resnet20_fashion_mnist_wd1e4.npz",
}
PREFIX = "pretrained:"  # a --checkpoint of this form names a shipped checkpoint


class Pretrained(NamedTuple):
    model: Any  # the Module, in eval mode
    transform: Any  # sescratch.data.Transform: uint8 images -> the normalised float32 the model saw
    classes: list  # class names, index = label
    config: Any  # the TrainConfig of the run that trained it
    meta: dict  # the checkpoint's meta: epochs, history (per-epoch test errors), best result


def list_pretrained() -> list[str]:
    return sorted(PRETRAINED)


def pretrained_path(name: str) -> Path:
    """The file of a shipped checkpoint; a clear error for an unknown name or a missing file."""
    if name not in PRETRAINED:
        raise UsageError(f"unknown pretrained checkpoint {name!r}; valid names: {', '.join(list_pretrained())}")
    path = WEIGHTS_DIR / PRETRAINED[name]
    if not path.is_file():
        raise UsageError(f"pretrained checkpoint {name!r}: {path} is missing from this installation "
                         "(reinstall sescratch: the file is package data)")
    return path


def resolve_checkpoint(spec: str | os.PathLike) -> Path:
    """A checkpoint path, or ``pretrained:NAME`` -> the shipped file."""
    text = os.fspath(spec)
    return pretrained_path(text[len(PREFIX):]) if text.startswith(PREFIX) else Path(text)


def load_pretrained(name: str, *, backend: str | None = None) -> Pretrained:
    """Build the model of a shipped checkpoint and load its weights, in eval mode.

    ``backend`` (numba | numpy) selects the CPU kernels for the rest of the process, as
    ``sescratch.backend.use`` does; by default the current family stays.
    """
    from sescratch import backend as backends
    from sescratch.data import Transform
    from sescratch.train.checkpoint import load_checkpoint
    from sescratch.train.config import TrainConfig, build_model

    ckpt = load_checkpoint(pretrained_path(name))
    if backend is not None:
        family, device = backends.run_placement(backend)
        if device != "cpu":
            raise UsageError(f"load_pretrained: backend must be numba or numpy, got {backend!r} "
                             "(move the model with sescratch.backend.to_device for the GPU)")
        backends.use(family)
    config = TrainConfig.from_dict(ckpt.config)
    meta = ckpt.meta
    model = build_model(config, len(meta["classes"]), meta["image_shape"][0], init=False)
    model.load_state_dict(ckpt.model_state)
    model.eval()
    norm = meta["normalization"]
    transform = Transform(norm["mean"], norm["std"], pad_to=norm["pad_to"])
    return Pretrained(model, transform, list(meta["classes"]), config, meta)


def export_pretrained(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``checkpoint`` without its optimiser state (half the size) to ``out``, checked on read.

    The maintainers' step after training (``docs/pretrained.md``); the result still loads with
    :func:`sescratch.train.load_checkpoint` and as ``--weights``, but a run cannot ``--resume``
    from it (no optimiser state).
    The configuration's ``out_dir`` (a directory of the machine that trained it) becomes
    ``runs/<name of out>``.
    """
    from sescratch.train.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(checkpoint)
    path = save_checkpoint(out, model_state=ckpt.model_state, optim_state={}, rng_state=ckpt.rng_state,
                           config={**ckpt.config, "out_dir": f"runs/{Path(out).stem}"},
                           meta={**ckpt.meta, "partial": None})
    load_checkpoint(path)
    return path
