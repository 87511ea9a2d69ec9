"""``sescratch train`` and ``sescratch eval``.

``sescratch train`` with no arguments trains SE-ResNet-20 on the embedded Fashion-MNIST subset
with the default recipe of :class:`sescratch.train.TrainConfig`. Options left out keep
the recipe's values — or, with ``--resume``, the values stored in ``OUT/last.npz``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


from sescratch.cli import int_list, parse_key_values
from sescratch.errors import UsageError
from sescratch.train.config import BACKENDS, DTYPES, SCHEDULE_UNITS, SCHEDULES

__all__ = ["add_commands", "config_from_args", "run_train", "run_eval"]


TRAIN_DESCRIPTION = """\
Train a model and evaluate it on the test split after every epoch.

With no arguments: {d.model} (r = {d.reduction}) on the embedded {d.dataset} (6,000 / 1,000
images), {d.epochs} epochs, batch {d.batch_size}, SGD momentum {d.momentum}, lr {d.lr} with a
{d.schedule} schedule, weight decay {d.weight_decay}, random crop (padding {d.crop_padding}) and
horizontal flip. Options left out keep these values -- or, with --resume, the values stored in
OUT/last.npz. Writes OUT/last.npz, best.npz, metrics.jsonl, metrics.csv and curves.png.
Ctrl-C saves OUT/last.npz and stops; --resume continues bit-exactly (--save-every N also
saves every N iterations, so even a kill -9 loses at most N steps). Every option is checked
before any work starts; one run at a time per OUT (a second one is refused), and a fresh run
over an earlier one needs --overwrite.
"""


def add_commands(subparsers) -> None:
    from sescratch.train.config import TrainConfig

    d = TrainConfig()
    p = subparsers.add_parser(
        "train", help="train a model (no arguments: SE-ResNet-20 on the embedded Fashion-MNIST subset)",
        description=TRAIN_DESCRIPTION.format(d=d), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help=f"model name (default {d.model}; `--model list` lists them)")
    p.add_argument("--dataset", help=f"dataset name (default {d.dataset}; `--dataset list` lists them)")
    p.add_argument("--data-dir", help="directory searched first for dataset files")
    p.add_argument("--no-download", dest="download", action="store_const", const=False,
                   help="never download dataset files")
    p.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, help=f"initial learning rate (default {d.lr})")
    p.add_argument("--momentum", type=float, help=f"default {d.momentum}")
    p.add_argument("--nesterov", action="store_const", const=True, help="Nesterov momentum")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help=f"learning-rate schedule (default {d.schedule}; step = /10 every 30 epochs)")
    p.add_argument("--step-size", type=int, help=f"epochs between /gamma for step (default {d.step_size})")
    p.add_argument("--milestones", type=_milestones, help="epochs for multistep, e.g. 50,75")
    p.add_argument("--gamma", type=float, help=f"decay factor of step/multistep (default {d.gamma})")
    p.add_argument("--warmup-epochs", type=float, help="linear warm-up length in epochs (default 0)")
    p.add_argument("--schedule-unit", choices=SCHEDULE_UNITS,
                   help=f"update the lr every iteration or every epoch (default {d.schedule_unit})")
    p.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}")
    p.add_argument("--no-decay-bn-bias", action="store_const", const=True,
                   help="no weight decay on BN parameters and biases")
    p.add_argument("--label-smoothing", type=float, help="epsilon (default 0)")
    p.add_argument("--reduction", type=int, help=f"SE reduction ratio r (default {d.reduction})")
    p.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="other model option, e.g. width=8, placement=pre (repeatable)")
    p.add_argument("--no-augment", dest="augment", action="store_const", const=False,
                   help="no random crop / horizontal flip")
    p.add_argument("--crop-padding", type=int, help=f"random-crop padding (default {d.crop_padding})")
    p.add_argument("--pad-to", type=int, help="zero-pad images to this size first (e.g. 32)")
    p.add_argument("--subset", type=int, help="use this many training images (stratified)")
    p.add_argument("--test-subset", type=int, help="use this many test images (stratified)")
    p.add_argument("--backend", choices=BACKENDS, help=f"default {d.backend}")
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--out", help=f"output directory (default {d.out_dir})")
    p.add_argument("--resume", action="store_true", help="continue the run saved in OUT/last.npz")
    p.add_argument("--weights", metavar="PATH", help="start from these weights (.npz, .safetensors, .pth/.pt; "
                   "sescratch, SENet release, timm or torchvision naming)")
    p.add_argument("--init-missing", action="store_true",
                   help="with --weights: keys the file lacks (e.g. the SE blocks, starting an SE-ResNet from "
                        "a ResNet) and a classifier for another number of classes keep their initialisation")
    p.add_argument("--overwrite", action="store_const", const=True,
                   help="start afresh over an earlier run in OUT (its files are removed)")
    p.add_argument("--save-every", type=int, metavar="N",
                   help="also save OUT/last.npz every N iterations (default: at epoch ends only)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   help="no progress bars")
    # issue 14 (H9): precision and data parallelism (docs/distributed.md)
    p.add_argument("--dtype", choices=DTYPES, help=f"weights and activations (default {d.dtype})")
    p.add_argument("--distributed", action="store_const", const=True,
                   help="data-parallel over the ranks of `mpirun -n N` (--batch-size is global)")
    p.add_argument("--sync-bn", action="store_const", const=True,
                   help="with --distributed: BN statistics of the global batch (default: per rank)")
    p.add_argument("--no-distributed", dest="distributed", action="store_const", const=False,
                   help="with --resume: continue a --distributed run as one process (and without --sync-bn)")
    p.add_argument("--no-sync-bn", dest="sync_bn", action="store_const", const=False,
                   help="with --resume: each rank's own BN statistics from here on")
    p.add_argument("--comm-timeout", type=float, metavar="SECONDS",
                   help=f"abort the job when a collective waits longer (default {d.comm_timeout:g})")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("eval", help="evaluate a checkpoint: top-1/top-5 error, per-class "
                              "accuracy, confusion-matrix PNG")
    e.add_argument("--checkpoint", help="a last.npz / best.npz written by train, or pretrained:NAME (shipped: "
                                        "pretrained:se_resnet20_fashion_mnist)")
    e.add_argument("--weights", metavar="PATH", help="instead of --checkpoint: a weights file "
                   "(.npz, .safetensors, .pth/.pt), with --model and --dataset")
    e.add_argument("--model", help="with --weights: the model of the weights")
    e.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="with --weights: other model option, e.g. width=8 (repeatable)")
    e.add_argument("--dataset", help="dataset to evaluate on (default: the one trained on)")
    e.add_argument("--data-dir", help="directory searched first for dataset files")
    e.add_argument("--no-download", dest="download", action="store_false",
                   help="never download dataset files")
    e.add_argument("--batch-size", type=int, default=500)
    e.add_argument("--backend", choices=BACKENDS, default="numba")
    e.add_argument("--out", help="where to write confusion_DATASET.png (default: beside the checkpoint; "
                              "for pretrained:NAME the current directory)")
    e.set_defaults(func=run_eval)


def _milestones(text: str) -> list[int]:
    return list(int_list(text))  # a list, as the config stores it in JSON


FIELD_OF = {"out": "out_dir"}


def config_from_args(args) -> "TrainConfig":
    """The run's configuration: recipe defaults (or the checkpoint's, with --resume) + options given."""
    from sescratch.data import list_datasets
    from sescratch.models import list_models
    from sescratch.train.checkpoint import load_checkpoint
    from sescratch.train.config import InvalidField, TrainConfig

    for kind, value, names in (("model", args.model, list_models()),
                               ("dataset", args.dataset, list_datasets())):
        if value is not None and value not in names:
            raise UsageError(f"unknown {kind} {value!r}; valid names: {', '.join(names)}")
    given = {FIELD_OF.get(k, k): v for k, v in vars(args).items()
             if v is not None and k not in ("func", "command", "model_option", "resume", "weights", "init_missing")}
    if given.get("distributed") is False:  # --no-distributed: sync BN needs ranks to sync over
        given.setdefault("sync_bn", False)
    if args.model_option:
        given["model_options"] = parse_key_values(args.model_option, "--model-option")
    if "model" in given and "out_dir" not in given:
        given["out_dir"] = f"runs/{given['model']}"
    base = TrainConfig().to_dict()
    if args.resume:
        path = Path(given.get("out_dir", base["out_dir"])) / "last.npz"
        if not path.exists():
            raise UsageError(f"--resume: no checkpoint at {path} (pass the run's --out DIR)")
        base = {**load_checkpoint(path).config, "overwrite": False}  # how the run began, not how it goes on
    config = TrainConfig.from_dict({**base, **given, "resume": bool(args.resume)})
    try:
        return config.validate()
    except InvalidField as exc:
        option = "--" + {v: k for k, v in FIELD_OF.items()}.get(exc.field, exc.field).replace("_", "-")
        if exc.field not in given:
            option += " (the stored or default value)"
        raise UsageError(f"{option} {exc.value!r:.80}: {exc.reason}") from None


def run_train(args) -> int:
    from sescratch.data import list_datasets
    from sescratch.models import list_models
    from sescratch.train.compile_notice import compile_notice
    from sescratch.train.trainer import Trainer, print_epoch

    if "list" in (args.model, args.dataset):
        names = list_models() if args.model == "list" else list_datasets()
        print("\n".join(names))
        return 0
    config = config_from_args(args)
    weights = None
    if args.weights:  # the file's zoo fixes architecture options (e.g. torchvision: stride on the 3x3)
        from sescratch.interop.cli import weights_for_training

        config, weights = weights_for_training(config, args.weights)
    elif args.init_missing:
        raise UsageError("--init-missing goes with --weights PATH")
    from sescratch.train.distributed import failing_together, launched_size, quiet_unless_root  # issue 14

    rank = 0
    if config.distributed:  # only rank 0 prints
        rank = quiet_unless_root(config.comm_timeout)
    elif launched_size() > 1:
        raise UsageError(f"started by mpirun as one of {launched_size()} processes: add --distributed "
                         "(otherwise every process would train the same run on its own)")
    with failing_together(config.distributed):  # issue 14: an error on one rank ends every rank
        trainer = Trainer(config, callbacks=(print_epoch,))
    if weights is not None:
        from sescratch.interop.cli import load_training_weights

        with failing_together(config.distributed):
            load_training_weights(trainer, weights, init_missing=args.init_missing)
            if trainer.dist is not None:  # every rank starts from rank 0's weights, whatever its file held
                trainer.dist.broadcast_state(trainer.model, trainer.optimizer)
    for note in (trainer.notes + _environment_notes(config)) if rank == 0 else ():  # stderr: rank 0's notes only
        print(note, file=sys.stderr, flush=True)
    data = trainer.data
    print(f"training {config.model} on {config.dataset} ({len(data.y_train)} train / "
          f"{len(data.y_test)} test images, {data.image_shape}, from {data.source or 'memory'}) for "
          f"{config.epochs} epochs -> {trainer.out_dir}"
          + (f" (resuming after epoch {trainer.epoch})" if config.resume else ""), flush=True)
    try:
        # issue 14; ranks > 0 send the compile notice where their stdout goes (nowhere)
        with failing_together(config.distributed), compile_notice(None if rank == 0 else sys.stdout) as compiling:
            result = trainer.fit()
    except KeyboardInterrupt:  # a second Ctrl-C
        print("aborted without saving", flush=True)
        return 130
    if result.status == "interrupted":
        return 130
    last = result.history[-1]
    print(f"done: test top-1 error {100 * last['test_top1_error']:.2f}% (accuracy "
          f"{100 * last['test_accuracy']:.2f}%), top-5 error {100 * last['test_top5_error']:.2f}%, "
          f"{last['elapsed_s']:.0f} s of training{_compile_share(compiling)}; best epoch {result.best['epoch']}; "
          f"files in {result.out_dir}")
    return 0


def _environment_notes(config) -> list[str]:
    """Notes on how the run was started: ``--distributed`` without ``mpirun``, and on the CPU the
    BLAS notice (``forced_blas_notice``)."""
    from sescratch.train.communicator import launched_by_mpirun

    notes = []
    if config.distributed and not launched_by_mpirun():
        notes.append("note: --distributed outside mpirun: one process trains the whole batch (start "
                     "`mpirun -n N sescratch train ... --distributed` for N ranks)")
    if config.backend != "cupy":
        from sescratch.kernels.numba.openblas import forced_blas_notice

        notice = forced_blas_notice()
        notes += [notice] if notice else []
    return notes


def _compile_share(compiling) -> str:
    """" (N s of it compiling K Numba kernels)" when the run compiled any, else ""."""
    if not compiling.compiled:
        return ""
    return f" ({compiling.seconds:.0f} s of it compiling {compiling.compiled} Numba kernels)"


def run_eval(args) -> int:
    from sescratch.train import rundir
    from sescratch.train.compile_notice import compile_notice
    from sescratch.train.evaluation import evaluate, load_for_evaluation
    from sescratch.train.metrics import plot_confusion
    from sescratch.train.pretrained import PREFIX, resolve_checkpoint

    if args.weights and args.checkpoint:
        raise UsageError("eval takes --checkpoint CKPT (a training run's file, its model and test set) or "
                         "--weights PATH --model NAME --dataset NAME, not both")
    if args.weights:
        from sescratch.interop.cli import run_eval_weights

        return run_eval_weights(args)
    if getattr(args, "model", None):
        raise UsageError(f"eval --checkpoint: --model {args.model} does not go with a checkpoint, which "
                         "names its own model (--model is for --weights)")
    if not args.checkpoint:
        raise UsageError("eval needs --checkpoint CKPT, or --weights PATH --model NAME --dataset NAME")
    shipped = args.checkpoint.startswith(PREFIX)  # pretrained:NAME, a file inside the package
    ckpt_path = resolve_checkpoint(args.checkpoint)
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: no such directory")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: expected an integer >= 1")
    out = Path(args.out) if args.out else Path(".") if shipped else ckpt_path.parent
    rundir.check_writable(out)  # where the confusion matrix goes: checked before the evaluation
    if ckpt_path.name == "best.npz":
        repaired = rundir.repair_if_idle(ckpt_path.parent)  # a kill between last.npz and best.npz
        if repaired:
            print(repaired, file=sys.stderr, flush=True)
    ev = load_for_evaluation(ckpt_path, dataset=args.dataset, data_dir=args.data_dir,
                             download=args.download, backend=args.backend)
    config, data, name = ev.config, ev.data, ev.dataset
    with compile_notice():
        result = evaluate(ev.model, data.x_test, data.y_test, ev.transform,
                          num_classes=data.num_classes, batch_size=args.batch_size, device=ev.device)
    print(f"{config.model} ({ckpt_path}, epoch {ev.checkpoint.epoch}) on {name} test ({result.count} "
          f"images, from {data.source or 'memory'})")
    print(result.report(data.classes))
    png = plot_confusion(result.confusion, data.classes, out / f"confusion_{name}.png",
                         title=f"{config.model} on {name}: top-1 error {100 * result.top1_error:.2f}%")
    print(f"  confusion matrix: {png}")
    return 0
