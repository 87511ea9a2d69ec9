"""The role of excitation (paper §6.4, Fig. 6 and Fig. 7) for a trained model.

For every SE block ``SE_{stage}_{block}`` the excitation ``s`` (N, C) of each test image is
collected from :attr:`sescratch.nn.SEBlock.excitation` after an eval-mode forward pass (the test
set of a checkpoint, or with ``--images DIR --model NAME --weights PATH`` your own images, one
sub-folder per class, with the release's preprocessing: Fig. 6 for any ImageNet classes). Then:

* per chosen class k: ``mean_k[c] = mean over the images of class k of s[:, c]`` (Fig. 6 lines);
* ``all_classes[c] = mean over every class k of mean_k[c]`` (the mean over all classes, the
  paper's reference line; the test sets here are class-balanced, so it is also the image mean);
* ``class_spread`` = mean over channels of the standard deviation of ``mean_k[c]`` across all
  classes: near 0 for a class-agnostic block, larger for a class-specific one;
* the distribution within one class (Fig. 7): median and quartiles of ``s[:, c]`` per channel.

Paper's finding (ImageNet, SE-ResNet-50): early blocks (SE_2_3, SE_3_4) are class-agnostic,
deeper ones (SE_4_6, SE_5_1) class-specific, SE_5_2 saturates near 1 and SE_5_3 differs across
classes only by a scale. The default blocks mirror its choice: the last block of every stage
but the final one, then every block of the final stage.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sescratch.errors import UsageError
from sescratch.io import atomic_write_text
from sescratch.plotting import figure, save_figure

__all__ = ["collect_excitations", "excitation_statistics", "default_blocks", "load_for_analysis",
           "plot_excitations", "plot_distribution", "add_excitations_command"]


def default_blocks(names) -> list[str]:
    """The paper's choice: the last SE block of each stage before the final one, then the final stage."""
    parsed = sorted((int(s), int(b)) for s, b in (n.split("_")[1:] for n in names))
    last_stage = max(s for s, _ in parsed)
    per_stage = {s: max(b for t, b in parsed if t == s) for s, _ in parsed}
    return [f"SE_{s}_{b}" for s, b in parsed if (s < last_stage and b == per_stage[s]) or s == last_stage]


def collect_excitations(model, x: np.ndarray, transform, *, blocks=None, batch_size: int = 500,
                        device: str = "cpu") -> dict[str, np.ndarray]:
    """Eval-mode forward over ``x`` (uint8 N,C,H,W); returns ``{block: s (N, C) float64}``."""
    from sescratch.backend import to_device, to_numpy
    from sescratch.data import BatchIterator

    se = model.se_blocks()
    names = list(se) if blocks is None else list(blocks)
    parts = {n: [] for n in names}
    was_training = model.training
    model.eval()
    try:
        for xb, _ in BatchIterator(x, np.zeros(len(x)), batch_size, transform=transform):
            model(to_device(xb, device))
            for n in names:
                parts[n].append(to_numpy(se[n].excitation).astype(np.float64))  # B,C
    finally:
        model.train(was_training)
    return {n: np.concatenate(p) for n, p in parts.items()}  # N,C each


def excitation_statistics(excitations: dict, labels: np.ndarray, class_names, chosen,
                          distribution_class=None, channels=None) -> dict:
    """Fig. 6 / Fig. 7 statistics from ``{block: s (N, C)}`` and the images' ``labels`` (N,).

    ``chosen`` are class indices; ``channels`` the channels reported: all (``None``), that many
    evenly spaced ones in each block (an int, as the paper's 50 sampled channels), or indices;
    ``distribution_class`` (default ``chosen[0]``) the class of the Fig. 7 quartiles.
    """
    labels = np.asarray(labels)
    present = [k for k in range(len(class_names)) if np.any(labels == k)]
    dist = chosen[0] if distribution_class is None else distribution_class
    for k in list(chosen) + [dist]:
        if not np.any(labels == k):
            raise UsageError(f"class {class_names[k]!r} has no test images")
    stats = {"classes": [class_names[k] for k in chosen], "class_indices": list(map(int, chosen)),
             "images_per_class": {class_names[k]: int((labels == k).sum()) for k in chosen},
             "distribution_class": class_names[dist], "blocks": {}}
    for name, s in excitations.items():
        idx = _channel_indices(s.shape[1], channels)
        means = np.stack([s[labels == k].mean(axis=0) for k in present])  # K,C
        all_classes = means.mean(axis=0)  # C
        within = s[labels == dist]  # N_k,C
        q1, median, q3 = np.percentile(within, [25, 50, 75], axis=0)  # C each
        stats["blocks"][name] = {
            "channels": idx.tolist(),  # the channels plotted and listed; the two summaries cover all
            "width": int(s.shape[1]),
            "all_classes": all_classes[idx].tolist(),
            "per_class": {class_names[k]: means[present.index(k)][idx].tolist() for k in chosen},
            "class_spread": float(means.std(axis=0).mean()),
            "mean_excitation": float(all_classes.mean()),
            "distribution": {"median": median[idx].tolist(), "q1": q1[idx].tolist(), "q3": q3[idx].tolist()},
        }
    return stats


def _channel_indices(width: int, channels) -> np.ndarray:
    if channels is None or (isinstance(channels, int) and channels >= width):
        return np.arange(width)
    if isinstance(channels, int):
        return np.unique(np.linspace(0, width - 1, channels).round().astype(int))
    idx = np.asarray(channels, dtype=int)
    return idx[idx < width]


def load_for_analysis(checkpoint, *, dataset=None, data_dir=None, download=True, backend_name="numba"):
    """Model (weights loaded, on the backend's device), test images, labels, class names,
    transform and config of a checkpoint of an SE model (:func:`sescratch.train.load_for_evaluation`)."""
    from sescratch.train.evaluation import load_for_evaluation

    ev = load_for_evaluation(checkpoint, dataset=dataset, data_dir=data_dir, download=download,
                             backend=backend_name)
    if not ev.model.se_blocks():
        raise UsageError(f"{ev.config.model} ({checkpoint}) has no SE blocks to analyse")
    return ev.model, ev.data.x_test, ev.data.y_test, list(ev.data.classes), ev.transform, ev.config


def _panels(n):
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = figure(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_excitations(stats: dict, path, title: str = "") -> Path:
    """Fig. 6: one panel per block, mean excitation per channel for each class and for all classes."""
    fig, axes = _panels(len(stats["blocks"]))
    for ax, (name, b) in zip(axes, stats["blocks"].items()):
        x = b["channels"]  # the channels' own indices, also where only a sample of them is kept
        for cls, values in b["per_class"].items():
            ax.plot(x, values, lw=1, label=cls)
        ax.plot(x, b["all_classes"], "k--", lw=1.2, label="all classes")
        ax.set(title=f"{name} (spread {b['class_spread']:.3f})", xlabel="channel index",
               ylabel="activation", ylim=(min(0.0, ax.get_ylim()[0]), max(1.0, ax.get_ylim()[1])))
    axes[0].legend(fontsize=7)
    fig.suptitle(title or "mean excitation per channel (Fig. 6)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=75)


def plot_distribution(stats: dict, path, title: str = "") -> Path:
    """Fig. 7: median excitation per channel within one class, with the inter-quartile band."""
    fig, axes = _panels(len(stats["blocks"]))
    for ax, (name, b) in zip(axes, stats["blocks"].items()):
        d, x = b["distribution"], b["channels"]
        ax.fill_between(x, d["q1"], d["q3"], alpha=0.3, label="quartiles")
        ax.plot(x, d["median"], lw=1, label="median")
        ax.set(title=name, xlabel="channel index", ylabel="activation")
    axes[0].legend(fontsize=7)
    fig.suptitle(title or f"excitations within class {stats['distribution_class']} (Fig. 7)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=75)


def _class_index(text: str, classes: list[str]) -> int:
    if text in classes:
        return classes.index(text)
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    raise UsageError(f"unknown class {text!r}; classes: {', '.join(classes)} "
                     f"(or indices 0-{len(classes) - 1})")


def run_excitations(args) -> int:
    if args.images:  # the user's own images (one sub-folder per class) and ImageNet weights
        from sescratch.interop.cli import load_images_for_analysis

        model, x, y, classes = load_images_for_analysis(args)
        transform, model_name, source = None, args.model, {"images": str(args.images), "weights": args.weights}
        default_out = Path("runs") / f"excitations-{args.model}"
    elif args.checkpoint:
        from sescratch.train.pretrained import PREFIX

        model, x, y, classes, transform, config = load_for_analysis(
            args.checkpoint, dataset=args.dataset, data_dir=args.data_dir, download=args.download,
            backend_name=args.backend)
        shipped = args.checkpoint.startswith(PREFIX)  # pretrained:NAME: a file inside the package
        default_out = Path("excitations") if shipped else Path(args.checkpoint).parent / "excitations"
        model_name = config.model
        source = {"checkpoint": str(args.checkpoint), "dataset": args.dataset or config.dataset}
    else:
        raise UsageError("give --checkpoint CKPT (a trained SE model and its test set), or --images DIR "
                         "--model NAME --weights PATH (your images, one sub-folder per class)")
    from sescratch.train.rundir import check_writable

    out = Path(args.out) if args.out else default_out
    check_writable(out)  # before the excitations are computed, not after
    if args.classes:
        chosen = [_class_index(c.strip(), classes) for c in args.classes.split(",") if c.strip()]
    elif args.images:
        chosen = list(range(len(classes)))
    else:
        chosen = sorted({int(i) for i in np.linspace(0, len(classes) - 1, min(4, len(classes)))})
    dist = _class_index(args.distribution_class, classes) if args.distribution_class else None
    names = list(model.se_blocks())
    if args.blocks in (None, "paper"):
        blocks = default_blocks(names)
    elif args.blocks == "all":
        blocks = names
    else:
        blocks = [b.strip() for b in args.blocks.split(",") if b.strip()]
        unknown = [b for b in blocks if b not in names]
        if unknown:
            raise UsageError(f"unknown SE block(s) {', '.join(unknown)}; the model has {', '.join(names)}")
    if args.images_per_class:  # the paper's 50 images per class, first ones in test order
        keep = np.concatenate([np.flatnonzero(y == k)[:args.images_per_class] for k in np.unique(y)])
        x, y = x[np.sort(keep)], y[np.sort(keep)]
    from sescratch.backend import run_placement

    device = run_placement(args.backend)[1]
    excitations = collect_excitations(model, x, transform, blocks=blocks, batch_size=args.batch_size,
                                      device=device)
    stats = excitation_statistics(excitations, y, classes, chosen, dist, args.channels)
    stats.update(model=model_name, **source)
    atomic_write_text(out / "excitations.json", json.dumps(stats, indent=1))
    plot_excitations(stats, out / "excitations.png", f"{model_name}: mean excitation per channel")
    plot_distribution(stats, out / "excitations_distribution.png")
    for name, b in stats["blocks"].items():
        print(f"{name}: {len(b['channels'])} of {b['width']} channels plotted; over all {b['width']}: mean "
              f"excitation {b['mean_excitation']:.3f}, spread across classes {b['class_spread']:.4f}")
    print(f"written: {out}/excitations.json, excitations.png, excitations_distribution.png")
    return 0


def _at_least_one(text: str) -> int:
    """An argparse type: an integer >= 1 (0 channels would plot nothing, 0 images mean none)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def add_excitations_command(subparsers) -> None:
    from sescratch.train.config import BACKENDS

    p = subparsers.add_parser("excitations", help="the paper's Fig. 6/7: excitations per class and block",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="best.npz / last.npz of an SE model (its test set is used), or "
                                        "pretrained:se_resnet20_fashion_mnist")
    p.add_argument("--images", metavar="DIR", help="your images instead, one sub-folder per class "
                   "(DIR/goldfish/*.jpg ...); needs --model and --weights")
    p.add_argument("--model", help="with --images: the model of the weights, e.g. se_resnet50")
    p.add_argument("--weights", metavar="PATH", help="with --images: .npz / .safetensors / .pth weights")
    p.add_argument("--crop", type=int, help="with --images: centre crop (default the model family's, 224 for SENets)")
    p.add_argument("--resize", type=int, help="with --images: shorter side first (default the family's for its "
                                               "crop, else crop * 256 / 224)")
    p.add_argument("--classes", help="comma-separated class names or indices (default: 4 spread classes)")
    p.add_argument("--distribution-class", help="class of the Fig. 7 quartiles (default: the first chosen)")
    p.add_argument("--blocks", help="'paper' (default), 'all', or names such as SE_2_3,SE_4_1")
    p.add_argument("--channels", type=_at_least_one, help="report this many evenly spaced channels (default all)")
    p.add_argument("--images-per-class", type=_at_least_one, help="use only the first N test images of each class")
    p.add_argument("--dataset", help="default: the checkpoint's")
    p.add_argument("--data-dir")
    p.add_argument("--no-download", dest="download", action="store_false")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--backend", choices=BACKENDS, default="numba")
    p.add_argument("--out", help="output directory (default: CHECKPOINT_DIR/excitations, "
                   "runs/excitations-MODEL with --images)")
    p.set_defaults(func=run_excitations)
