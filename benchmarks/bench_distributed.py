"""Data-parallel scaling, measured on this machine and modelled for 1-64 machines.

Measured (same run, interleaved, every process under ``nice -n 10``), SE-ResNet-20 training
on the embedded Fashion-MNIST subset, global batch 64, Numba kernels:

* images/s of ``sescratch train``: 1 process x 1 thread, 1 process x 2 threads, and
  ``mpirun -n 2`` x 1 thread (per-rank BN, and ``--sync-bn``), read from ``metrics.jsonl``;
* the time of one MPI allreduce of SE-ResNet-20's gradient buffer and of a sync-BN-sized
  message between 2 ranks (shared memory);
* the single-process training step of SE-ResNet-50 (224 x 224, batch 8) per image.

Modelled: a step of global batch B on N machines takes ``t_compute(1) / N + t_comm(N)`` with the
ring-allreduce cost ``t_comm = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency`` (plus,
with sync BN, three such allreduces of 2C float64 per BN layer); efficiency = t(1) / (N t(N)).
Writes ``docs/distributed_scaling.png`` and prints a JSON summary (``--json PATH`` to save it).

    python benchmarks/bench_distributed.py              # everything (~3 minutes on 2 cores)
    python benchmarks/bench_distributed.py --model-only --from results.json   # replot
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from sescratch.cli import main; sys.exit(main())"]
RUN = ["train", "--subset", "1536", "--test-subset", "100", "--epochs", "1", "--batch-size", "64",
       "--no-progress", "--backend", "numba", "--schedule", "constant"]
LINKS = {"10 Gbit/s": (10e9 / 8, 30e-6), "100 Gbit/s": (100e9 / 8, 3e-6)}  # bytes/s, latency (s)
MACHINES = np.array([1, 2, 4, 8, 16, 32, 64])


def environment(threads: int) -> dict:
    return {**os.environ, "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def images_per_s(ranks: int, threads: int, *extra: str) -> float:
    """``train_images_per_s`` of one epoch (1536 images, 24 steps) of ``sescratch train``."""
    with tempfile.TemporaryDirectory() as out:
        args = RUN + ["--out", out, *extra]
        command = ["nice", "-n", "10"] + (CLI + args if ranks == 0 else
                                          ["mpirun", "-n", str(ranks), "--oversubscribe"] + CLI + args
                                          + ["--distributed"])
        subprocess.run(command, check=True, capture_output=True, env=environment(threads))
        rows = (Path(out) / "metrics.jsonl").read_text().splitlines()
        return float(json.loads(rows[-1])["train_images_per_s"])


def allreduce_worker(nbytes: list[int], repeats: int) -> None:
    """Run under ``mpirun -n 2``: median seconds of one allreduce per size, printed by rank 0."""
    from sescratch.train.distributed import Communicator

    comm = Communicator.world()
    result = {}
    for n in nbytes:
        flat = np.ones(max(n // 4, 1), dtype=np.float32)
        times = []
        for _ in range(repeats):
            comm.barrier()
            t0 = time.perf_counter()
            comm.allreduce_sum(flat)
            times.append(time.perf_counter() - t0)
        result[str(n)] = float(np.median(times))
    if comm.rank == 0:
        print(json.dumps(result))


def allreduce_times(nbytes: list[int]) -> dict:
    command = ["nice", "-n", "10", "mpirun", "-n", "2", "--oversubscribe", sys.executable, __file__,
               "--allreduce-worker", ",".join(map(str, nbytes))]
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=environment(1))
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def step_seconds_per_image(name: str, shape: tuple, classes: int, batch: int, threads: int) -> float:
    """One process: median seconds per image of a training step (after one warm-up step)."""
    code = f"""
import json, time, numpy as np
from sescratch import backend, models
from sescratch.ops import softmax_cross_entropy
from sescratch.train import SGD
backend.use("numba")
model = models.create({name!r}, num_classes={classes}, in_channels={shape[0]}).train()
opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
rng = np.random.default_rng(0)
x = rng.standard_normal(({batch},) + {tuple(shape)!r}).astype(np.float32)
y = rng.integers(0, {classes}, {batch})
times = []
for _ in range(3):
    t0 = time.perf_counter()
    model.zero_grad(); _, d = softmax_cross_entropy(model(x), y); model.backward(d); opt.step()
    times.append(time.perf_counter() - t0)
print(json.dumps(float(np.median(times[1:])) / {batch}))
"""
    done = subprocess.run(["nice", "-n", "10", sys.executable, "-c", code], check=True,
                          capture_output=True, text=True, env=environment(threads))
    return float(done.stdout.strip().splitlines()[-1])


def gradient_bytes(name: str, classes: int, channels: int) -> tuple[int, int, float]:
    """(float32 gradient bytes, BN layers, their mean channel count) of a model."""
    from sescratch import models
    from sescratch.nn.layers import BatchNorm2d

    model = models.create(name, num_classes=classes, in_channels=channels)
    bn = [m for m in model.modules() if isinstance(m, BatchNorm2d)]
    return 4 * model.num_parameters(), len(bn), float(np.mean([m.num_features for m in bn]))


def ring(nbytes: float, n: np.ndarray, bandwidth: float, latency: float) -> np.ndarray:
    """Seconds of a ring allreduce of ``nbytes`` over ``n`` machines."""
    return 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * latency


def crossover(step_1, nbytes, bn_layers, bn_channels, bw, lat, limit: int = 1 << 20) -> int | None:
    """The smallest N (any integer up to ``limit``) with communication > compute per step."""
    n = np.arange(2, limit + 1, dtype=np.float64)
    comm = ring(nbytes, n, bw, lat) + bn_layers * (ring(32 * bn_channels, n, bw, 0) + 3 * ring(0, n, bw, lat))
    hits = np.nonzero(comm > step_1 / n)[0]
    return int(n[hits[0]]) if hits.size else None


def model_steps(step_1: float, nbytes: float, bn_layers: int, bn_channels: float, sync_bn: bool):
    """{link: (step seconds, efficiency, N where communication > compute or None)} for MACHINES."""
    out = {}
    for link, (bw, lat) in LINKS.items():
        compute = step_1 / MACHINES
        comm = ring(nbytes, MACHINES, bw, lat)
        if sync_bn:  # per BN layer 3 allreduces: C + 1, C and 2C float64 (32 C bytes in all)
            bn_bytes = ring(32 * bn_channels, MACHINES, bw, 0) + 3 * ring(0, MACHINES, bw, lat)
            comm = comm + bn_layers * bn_bytes
        step = compute + comm * (MACHINES > 1)
        dominated = [int(n) for n, c, k in zip(MACHINES, compute, comm) if n > 1 and k > c]
        out[link] = {"step_s": step.tolist(), "efficiency": (step_1 / (MACHINES * step)).tolist(),
                     "communication_dominates_from": dominated[0] if dominated else None,
                     "crossover_n": crossover(step_1, nbytes, bn_layers if sync_bn else 0,
                                              bn_channels, bw, lat)}
    return out


def plot(models: dict, path: Path) -> None:
    from sescratch.plotting import figure

    fig, axes = figure(1, 2, figsize=(10, 4.4))
    for (label, entry), style in zip(models.items(), ("-", "--", ":", "-.")):
        for link, color in zip(LINKS, ("tab:blue", "tab:red")):
            m = entry["model"][link]
            axes[0].loglog(MACHINES, m["step_s"], style, color=color, marker="o", ms=3,
                           label=f"{label}, {link}")
            axes[1].semilogx(MACHINES, m["efficiency"], style, color=color, marker="o", ms=3)
    axes[0].set(xlabel="machines N", ylabel="step time (s), global batch fixed",
                title="Predicted step time")
    axes[1].set(xlabel="machines N", ylabel="efficiency t(1) / (N t(N))", ylim=(0, 1.05),
                title="Predicted efficiency")
    for ax in axes:
        ax.set_xticks(MACHINES, [str(n) for n in MACHINES])
        ax.grid(True, alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="lower center", ncol=4)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(path, dpi=110)


def measure() -> dict:
    subprocess.run(CLI + RUN[:1] + ["--subset", "64", "--test-subset", "50", "--epochs", "1",
                   "--no-progress", "--out", tempfile.mkdtemp()], check=True, capture_output=True,
                   env=environment(2))  # warm the Numba cache
    cases = {"1 process x 1 thread": (0, 1), "1 process x 2 threads": (0, 2),
             "2 ranks x 1 thread": (2, 1), "2 ranks x 1 thread, --sync-bn": (2, 1, "--sync-bn")}
    rounds = {k: [] for k in cases}
    for _ in range(2):  # interleaved rounds, best of each
        for label, case in cases.items():
            rounds[label].append(images_per_s(*case))
    throughput = {k: max(v) for k, v in rounds.items()}
    r20_bytes, r20_bn, r20_c = gradient_bytes("se_resnet20", 10, 1)
    r50_bytes, r50_bn, r50_c = gradient_bytes("se_resnet50", 1000, 3)
    return {"throughput_images_per_s": throughput, "rounds": rounds,
            "allreduce_s_2_ranks": allreduce_times([r20_bytes, 16 * 64, r50_bytes]),
            "se_resnet20": {"gradient_bytes": r20_bytes, "bn_layers": r20_bn, "bn_channels": r20_c,
                            "s_per_image": 1 / throughput["1 process x 2 threads"], "batch": 128},
            "se_resnet50": {"gradient_bytes": r50_bytes, "bn_layers": r50_bn, "bn_channels": r50_c,
                            "s_per_image": step_seconds_per_image("se_resnet50", (3, 224, 224), 1000, 8, 2),
                            "batch": 256}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--from", dest="source", help="results JSON of an earlier run (no measuring)")
    parser.add_argument("--model-only", action="store_true", help="with --from: only model and plot")
    parser.add_argument("--allreduce-worker", help=argparse.SUPPRESS)
    parser.add_argument("--png", default=str(ROOT / "docs" / "distributed_scaling.png"))
    args = parser.parse_args()
    if args.allreduce_worker:
        return allreduce_worker([int(n) for n in args.allreduce_worker.split(",")], repeats=50)
    results = json.loads(Path(args.source).read_text()) if args.source else measure()
    models = {}
    for name in ("se_resnet20", "se_resnet50"):
        e = results[name]
        step_1 = e["s_per_image"] * e["batch"]
        for sync in (False, True):
            label = f"{name} B={e['batch']}" + (" sync BN" if sync else "")
            models[label] = {"step_1_s": step_1, "model": model_steps(
                step_1, e["gradient_bytes"], e["bn_layers"], e["bn_channels"], sync)}
    results["model"] = models
    plot(models, Path(args.png))
    text = json.dumps(results, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
