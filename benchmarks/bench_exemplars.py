"""The training step of each CIFAR-scale SE exemplar: sescratch vs the same network in PyTorch.

    python benchmarks/bench_exemplars.py                        # every SE exemplar, batch 64, 3x32x32
    python benchmarks/bench_exemplars.py se_shufflenet_v1_g3_cifar --batch 128 --repeats 9

Each model is built with ``sescratch.models.create(NAME, num_classes=10)`` and converted with
``sescratch.interop.torch.to_torch`` (same weights, same layers), so both sides compute the same
network. A step is forward, softmax cross-entropy and backward (no optimiser update), float32,
training mode, both libraries on all CPUs. The two sides alternate call by call after two
warm-ups each; the median of ``--repeats`` is printed with the ratio ours / torch. Needs
PyTorch (``pip install torch==2.13.0``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

import torch  # noqa: E402  (first, so that its OpenMP runtime keeps its own settings)

from bench_ops import machine  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from sescratch import models, ops  # noqa: E402
from sescratch.interop.torch import to_torch  # noqa: E402

EXEMPLARS = ["se_resnet56", "se_vgg16_bn_cifar", "se_bn_inception_cifar", "se_inception_resnet_v2_cifar",
             "se_mobilenet_v1_cifar", "se_shufflenet_v1_g3_cifar"]


def steps(name: str, batch: int):
    """(ours, theirs): one training step each, on the same network, weights and batch."""
    model = models.create(name, num_classes=10).train()
    net = to_torch(model).train()
    x = np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    labels = np.arange(batch) % 10
    xt, lt = torch.from_numpy(x), torch.from_numpy(labels)

    def ours():
        _, dlogits = ops.softmax_cross_entropy(model(x), labels)
        model.zero_grad()
        model.backward(dlogits)

    def theirs():
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), lt).backward()

    return ours, theirs


def measure(name: str, batch: int, repeats: int) -> tuple[float, float]:
    ours, theirs = steps(name, batch)
    for _ in range(2):
        ours(), theirs()
    times = {ours: [], theirs: []}
    for _ in range(repeats):
        for step in (ours, theirs):
            start = time.perf_counter()
            step()
            times[step].append(time.perf_counter() - start)
    return float(np.median(times[ours])), float(np.median(times[theirs]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="CIFAR-scale SE exemplars: a training step vs PyTorch.")
    parser.add_argument("names", nargs="*", default=EXEMPLARS, metavar="NAME",
                        help=f"models (default: {' '.join(EXEMPLARS)})")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in models.list_models()]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; "
                     f"models.list_models() has {', '.join(models.list_models())}")
    if args.batch < 1 or args.repeats < 1:
        parser.error(f"--batch and --repeats must be >= 1, got {args.batch} and {args.repeats}")
    cpu = machine().get("cpu", "unknown CPU")
    print(f"training step (fwd, loss, bwd), batch {args.batch}, 3x32x32, float32; {cpu}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"median of {args.repeats}, alternating")
    print(f"{'model':32s} {'ours ms':>9s} {'torch ms':>9s} {'x torch':>8s}")
    for name in args.names:
        mine, theirs = measure(name, args.batch, args.repeats)
        print(f"{name:32s} {1e3 * mine:9.1f} {1e3 * theirs:9.1f} {mine / theirs:8.2f}")


if __name__ == "__main__":
    main()
