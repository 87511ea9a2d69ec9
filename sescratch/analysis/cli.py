"""``sescratch experiment {se-vs-plain,reduction,variants}`` and ``sescratch excitations``.

Experiments train one run per (row, seed) under a shared budget and write
``OUT/<name>.json``, ``.md`` and ``.png``; rerunning the same command skips finished runs and
continues interrupted ones. ``--budget`` picks a named budget (smoke, small, medium, full);
the other options override its fields.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from sescratch.cli import int_list, parse_key_values
from sescratch.errors import UsageError

__all__ = ["add_commands"]


def add_commands(subparsers) -> None:
    """Add ``experiment`` (with one sub-command per experiment) and ``excitations``."""
    from sescratch.analysis.experiments import BUDGETS, EXPERIMENTS, VARIANT_TABLES

    exp = subparsers.add_parser("experiment", help="reproduce a table of the paper at small scale",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = exp.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    exp.set_defaults(func=_missing_experiment)
    for name, (title, _) in EXPERIMENTS.items():
        p = which.add_parser(name, help=title, description=title)
        _budget_options(p, BUDGETS)
        if name == "se-vs-plain":
            p.add_argument("--depths", type=int_list, default=(20, 56),
                           help="CIFAR ResNet depths to compare (default 20,56)")
        else:
            p.add_argument("--depth", type=int, default=20, help="SE-ResNet depth (default 20)")
        if name == "reduction":
            p.add_argument("--ratios", type=int_list, default=(2, 4, 8, 16, 32), help="default 2,4,8,16,32")
        if name == "variants":
            p.add_argument("--tables", type=_names, default=tuple(VARIANT_TABLES),
                           help=f"which ablations (default {','.join(VARIANT_TABLES)})")
        p.set_defaults(func=run_experiment_command)

    from sescratch.analysis.excitations import add_excitations_command

    add_excitations_command(subparsers)


def _budget_options(p, budgets) -> None:
    from sescratch.train.config import BACKENDS, SCHEDULES

    g = p.add_argument_group("budget (a named budget, then any field overridden)")
    described = "; ".join(f"{k}: {b.epochs} epochs, {b.subset or 'all'} training images, "
                          f"{len(b.seeds)} seed(s), width {b.width}" for k, b in budgets.items())
    g.add_argument("--budget", choices=tuple(budgets), default="small",
                   help=f"default small ({described})")
    g.add_argument("--dataset", help="fashion-mnist-subset (default), fashion-mnist, cifar10, cifar100, ...")
    g.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="loader option, e.g. n_train=64 for synthetic (repeatable)")
    g.add_argument("--data-dir", help="directory searched first for dataset files")
    g.add_argument("--no-download", dest="download", action="store_const", const=False)
    g.add_argument("--epochs", type=int)
    g.add_argument("--subset", type=int, help="training images (stratified); 0 = all")
    g.add_argument("--test-subset", type=int, help="test images (stratified); 0 = all")
    g.add_argument("--seeds", type=_seeds, help="N (seeds 0..N-1) or a list such as 3,7")
    g.add_argument("--width", type=int, help="channels of the first stage (16 = ResNet-20 as published)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--schedule", choices=SCHEDULES)
    g.add_argument("--no-augment", dest="augment", action="store_const", const=False)
    g.add_argument("--pad-to", type=int, help="zero-pad images to this size (e.g. 32)")
    g.add_argument("--backend", choices=BACKENDS)
    g.add_argument("--progress", action="store_const", const=True, help="per-batch progress bars")
    p.add_argument("--out", default="runs/experiments",
                   help="output directory; cells go to OUT/cells (default runs/experiments)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and their state, train nothing")


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _seeds(text: str) -> tuple[int, ...]:
    if "," in text:
        return int_list(text)
    n = int_list(text)[0]
    if n < 1:
        raise argparse.ArgumentTypeError(f"--seeds needs N >= 1, got {n}")
    return tuple(range(n))


def budget_from_args(args):
    """The named budget with the options given on the command line applied."""
    from sescratch.analysis.experiments import BUDGETS
    from sescratch.data import list_datasets

    budget = BUDGETS[args.budget]
    changes = {k: getattr(args, k) for k in ("dataset", "data_dir", "download", "epochs", "seeds", "width",
                                              "batch_size", "lr", "weight_decay", "schedule", "augment",
                                              "pad_to", "backend", "progress")
               if getattr(args, k) is not None}
    for k in ("subset", "test_subset"):
        v = getattr(args, k)
        if v is not None:
            if v < 0:
                raise UsageError(f"--{k.replace('_', '-')} must be >= 0 (0 = all), got {v}")
            changes[k] = v or None
    if args.dataset_option:
        changes["dataset_options"] = parse_key_values(args.dataset_option, "--dataset-option")
    budget = replace(budget, **changes)
    if budget.dataset not in list_datasets():
        raise UsageError(f"unknown dataset {budget.dataset!r}; valid names: {', '.join(list_datasets())}")
    for k in ("epochs", "width", "batch_size"):
        if getattr(budget, k) < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be >= 1, got {getattr(budget, k)}")
    return budget


def command_line(args) -> str:
    """The command as typed, rebuilt from the parsed options (those given, in a fixed order)."""
    words = ["sescratch", "experiment", args.experiment]
    skip = {"func", "command", "experiment", "dry_run"}
    for key, value in vars(args).items():
        if key in skip or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if key in ("download", "augment", "progress"):  # store_const flags
            words.append({"download": "--no-download", "augment": "--no-augment",
                          "progress": "--progress"}[key])
        elif key == "dataset_option":
            words += [w for item in value for w in ("--dataset-option", item)]
        elif isinstance(value, tuple):  # one value keeps its comma: "--seeds 7" would mean seeds 0-6
            words += [flag, ",".join(map(str, value)) + ("," if len(value) == 1 else "")]
        else:
            words += [flag, str(value)]
    return " ".join(words)


def _missing_experiment(args) -> int:
    from sescratch.analysis.experiments import EXPERIMENTS

    raise UsageError(f"name an experiment: {', '.join(EXPERIMENTS)}")


def run_experiment_command(args) -> int:
    from sescratch.analysis.experiments import run_experiment

    budget = budget_from_args(args)
    choices = {k: getattr(args, k) for k in ("depths", "depth", "ratios", "tables") if hasattr(args, k)}
    if "depths" in choices:
        choices.pop("depth", None)
    print(f"experiment {args.experiment}: {budget}", flush=True)
    report = run_experiment(args.experiment, budget, args.out, dry_run=args.dry_run,
                            log=lambda line: print(line, flush=True), command=command_line(args),
                            **choices)
    if args.dry_run:
        return 0
    from sescratch.analysis.report import markdown_table

    print(markdown_table(report))
    print(f"written: {args.out}/{args.experiment}.json, .md, .png")
    return 130 if report.get("interrupted") else 0
