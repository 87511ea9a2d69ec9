"""One SGD training step (forward, loss, backward, update) of SE-ResNet-20 and ResNet-20.

sescratch against the same architecture in PyTorch (built by ``sescratch.interop.torch.to_torch``
from the same weights), batch 128 of 3x32x32, float32, in the same process, interleaved, median.
The step's effective GFLOP/s (the direct algorithm's multiply-adds x 2 x 3, whatever algorithm
ran) is also given as a fraction of the machine's float32 GEMM peak, measured in the same run
(NumPy, square products: ``bench_gemm.py``). Then inference (eval mode, batch ``--eval-batch``,
256 by default), interleaved the same way; with ``--load``, the steps again while a second
process keeps one core busy (``python -c "while True: pass"``, killed after): the slowdown of
each implementation. Then, each in its own subprocess: peak resident memory of a training step
(``VmHWM`` after resetting it, and ``ru_maxrss``), and the first-step (compile) cost of the Numba
kernels with a cold cache (a fresh ``NUMBA_CACHE_DIR``) and with that cache warm. The targets of
issue 15 are printed beside the measured ratios.

    python benchmarks/bench_train_step.py                # full run
    python benchmarks/bench_train_step.py --quick        # fewer repeats, SE-ResNet-20 probes only
    python benchmarks/bench_train_step.py --json out.json   (or --json - for stdout)
    python benchmarks/bench_train_step.py --profile      # where the sescratch step's time goes
    python benchmarks/bench_train_step.py --load         # also the steps beside a busy process
    python benchmarks/bench_train_step.py --threads 1    # one thread each; CPU-time ratios too
    python benchmarks/bench_train_step.py --device gpu   # CuPy against torch CUDA
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

try:  # PyTorch first, so that its OpenMP runtime keeps its own settings (sescratch/kernels/numba/__init__.py)
    import torch  # noqa: F401
except ImportError:
    pass

from bench_gemm import blas_kernels, gemm_peak  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from bench_threading import numba_layer  # noqa: E402

MODELS = ("se_resnet20", "resnet20")
TARGETS = {"step_vs_torch": 1.2, "resnet20_step_vs_torch": 1.2, "inference_vs_torch": 1.2,
           "resnet20_inference_vs_torch": 1.2, "se_overhead": 1.05, "memory_vs_torch": 1.5,
           "warm_first_call_s": 2.0, "numba_load_slowdown": 2.0}


def build(impl, name, device, batch, seed=0):
    """(step, sync, flops) for one implementation: ``step()`` runs one SGD training step."""
    from sescratch import models
    from sescratch.summary import summary

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    model = models.create(name, num_classes=10, seed=seed)
    flops = 3 * 2 * summary(model, (3, 32, 32)).macs() * batch  # forward + 2x for backward
    if impl == "torch":
        import torch

        from sescratch.interop.torch import to_torch

        dev = "cuda" if device == "gpu" else "cpu"
        net = to_torch(model).to(dev).train()
        del model
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(labels).to(dev)

        def step():
            opt.zero_grad(set_to_none=False)
            loss = torch.nn.functional.cross_entropy(net(xt), yt)
            loss.backward()
            opt.step()

        sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
        return step, sync, flops

    from sescratch import backend
    from sescratch.ops import softmax_cross_entropy
    from sescratch.train import SGD

    backend.use(impl if device == "cpu" else "numpy")
    if device == "gpu":
        import cupy

        model, x, labels = backend.to_device((model, x, labels), "gpu")
        sync = cupy.cuda.get_current_stream().synchronize
    else:
        sync = lambda: None  # noqa: E731
    model.train()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step():
        logits = model(x)
        _, dlogits = softmax_cross_entropy(logits, labels)
        opt.zero_grad()
        model.backward(dlogits)
        opt.step()

    return step, sync, flops


def has_torch(device):
    """PyTorch importable (with CUDA for ``device == "gpu"``); without it only sescratch runs."""
    try:
        import torch
    except ImportError:
        return False
    return device == "cpu" or torch.cuda.is_available()


def build_eval(impl, name, device, batch, seed=0):
    """(run, sync, flops) for inference: ``run()`` is one eval-mode forward of ``batch`` images."""
    from sescratch import models
    from sescratch.summary import summary

    x = np.random.default_rng(seed).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    model = models.create(name, num_classes=10, seed=seed)
    flops = 2 * summary(model, (3, 32, 32)).macs() * batch
    model.eval()
    if impl == "torch":
        import torch

        from sescratch.interop.torch import to_torch

        dev = "cuda" if device == "gpu" else "cpu"
        net, xt = to_torch(model).to(dev).eval(), torch.from_numpy(x).to(dev)

        def run():
            with torch.no_grad():
                net(xt)

        return run, torch.cuda.synchronize if device == "gpu" else (lambda: None), flops
    from sescratch import backend

    backend.use(impl if device == "cpu" else "numpy")
    if device == "gpu":
        import cupy

        model, x = backend.to_device((model, x), "gpu")
        return (lambda: model(x)), cupy.cuda.get_current_stream().synchronize, flops
    return (lambda: model(x)), (lambda: None), flops


def time_under_load(cases, repeats):
    """{key: (quiet median s, loaded median s)}: the cases interleaved, then again while a second
    process spins on one core (started here, killed after)."""
    quiet = time_interleaved(cases, 1, repeats)
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        loaded = time_interleaved(cases, 1, repeats)
    finally:
        competitor.kill()
        competitor.wait()
    return {key: (statistics.median(quiet[key]), statistics.median(loaded[key])) for key in cases}


def time_interleaved(cases, warmup, repeats, cpu_times=None):
    """{key: list of seconds}: every case once per round, rounds repeated, after warm-ups.

    ``cpu_times``, a dict, receives the process CPU time of each run the same way: with one
    thread per implementation it is the work done, whatever else the machine runs."""
    for step, sync, _ in cases.values():
        for _ in range(warmup):
            step()
        sync()
    times = {key: [] for key in cases}
    cpu = {key: [] for key in cases}
    for _ in range(repeats):
        for key, (step, sync, _) in cases.items():
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            sync()
            times[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    if cpu_times is not None:
        cpu_times.update(cpu)
    return times


# ------------------------------------------------------------------------- subprocess probes
def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def probe_memory(impl, name, batch):
    """Peak resident memory of steady training steps, in MiB (runs in its own process)."""
    import sescratch.models  # noqa: F401  the libraries first: their size is not the step's
    import sescratch.ops  # noqa: F401

    if impl == "torch":
        import torch  # noqa: F401

        import sescratch.interop.torch  # noqa: F401
    else:
        import sescratch.kernels.numba  # noqa: F401
    rss_imports = _rss_kib("VmRSS")
    step, sync, _ = build(impl, name, "cpu", batch)
    step()  # first step: lazy buffers (momentum), kernels loaded from the Numba cache
    rss_before = _rss_kib("VmRSS")
    try:  # reset the high-water mark so that VmHWM covers the steps below only
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    for _ in range(2):
        step()
    peak = _rss_kib("VmHWM") if reset else None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mib = 1 / 1024
    return {
        "rss_after_imports_mib": rss_imports * mib,
        "rss_before_steps_mib": rss_before * mib,
        "step_peak_rss_mib": peak * mib if peak is not None else maxrss * mib,
        "process_peak_rss_mib": maxrss * mib,
        "training_mib": ((peak if peak is not None else maxrss) - rss_imports) * mib,
    }


def probe_compile(name, batch):
    """First-step cost of the Numba kernels in a fresh interpreter (cache set by the caller)."""
    t0 = time.perf_counter()
    import sescratch.kernels.numba  # noqa: F401  (what the first op would import)

    t_import = time.perf_counter() - t0
    step, sync, _ = build("numba", name, "cpu", batch)
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    steady = []
    for _ in range(3):
        t0 = time.perf_counter()
        step()
        steady.append(time.perf_counter() - t0)
    steady_s = min(steady)
    return {"import_s": t_import, "first_step_s": first, "steady_step_s": steady_s,
            "first_call_overhead_s": t_import + first - steady_s}


def run_probe(args, kind, extra_env=None, **opts):
    cmd = [sys.executable, os.path.abspath(__file__), "--probe", kind, "--batch", str(args.batch)]
    for key, value in opts.items():
        cmd += [f"--{key}", str(value)]
    env = {**os.environ, **(extra_env or {})}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"rc {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- reports
def profile_step(name, batch, steps=3, top=25):
    """cProfile of sescratch steps: the Numba kernels and ops by own time."""
    step, _, _ = build("numba", name, "cpu", batch)
    step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    print(f"\nProfile of {steps} {name} steps (numba family), by own time per step:")
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    total = sum(v[2] for v in stats.stats.values())
    print(f"{'ms/step':>9} {'share':>6} {'calls':>6}  function")
    for (filename, line, func), (_, ncalls, tottime, _, _) in rows:
        where = filename.split("sescratch/")[-1] if "sescratch/" in filename else os.path.basename(filename)
        print(f"{tottime / steps * 1e3:9.1f} {tottime / total:6.1%} {ncalls // steps:6d}  {where}:{line}({func})")


def set_threads(count):
    """The thread counts of Numba, NumPy's OpenBLAS and PyTorch, for the rest of the process."""
    import numba

    from sescratch.kernels.numba.openblas import thread_controls

    numba.set_num_threads(count)
    for _, put in thread_controls():
        put(count)
    try:
        import torch

        torch.set_num_threads(count)
    except ImportError:
        pass


def machine():
    import platform

    info = {"python": platform.python_version(), "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0]}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    for mod in ("numpy", "numba", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    info["numba_threading_layer"] = numba_layer()
    info["blas_kernels"] = blas_kernels()
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 warm-ups, 5 rounds, fewer probes")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH")
    parser.add_argument("--profile", action="store_true", help="also profile the sescratch step")
    parser.add_argument("--eval-batch", type=int, default=256, help="batch of the inference timing")
    parser.add_argument("--load", action="store_true", help="also time the steps beside a busy process")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of Numba and PyTorch (default: theirs, the CPU count)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--probe", choices=("memory", "compile"), help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="numba", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="se_resnet20", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe == "memory":
        print(json.dumps(probe_memory(args.impl, args.model, args.batch)))
        return 0
    if args.probe == "compile":
        print(json.dumps(probe_compile(args.model, args.batch)))
        return 0

    if args.threads:
        set_threads(args.threads)
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 20)
    ours = "cupy" if args.device == "gpu" else "numba"
    impls = (ours, "torch") if has_torch(args.device) else (ours,)
    cases = {(impl, name): build(impl, name, args.device, args.batch) for name in MODELS for impl in impls}
    load_before = os.getloadavg()[0]
    cpu_times = {}
    times = time_interleaved(cases, warmup, repeats, cpu_times)
    median = {key: statistics.median(ts) for key, ts in times.items()}
    cpu_median = {key: statistics.median(ts) for key, ts in cpu_times.items()}
    peak = gemm_peak(threads=args.threads) if args.device == "cpu" else None
    result = {"machine": machine(), "device": args.device, "batch": args.batch, "dtype": "float32",
              "threads": args.threads,
              "warmup": warmup, "repeats": repeats, "steps": [], "targets": TARGETS,
              "gemm_peak_gflops": peak, "load_avg_1m_before": load_before}
    for (impl, name), (_, _, flops) in cases.items():
        ts = times[(impl, name)]
        gflops = flops / median[(impl, name)] / 1e9
        result["steps"].append({"impl": impl, "model": name, "median_ms": median[(impl, name)] * 1e3,
                                "min_ms": min(ts) * 1e3, "cpu_ms": cpu_median[(impl, name)] * 1e3,
                                "gflops": gflops,
                                "of_gemm_peak": gflops / peak if peak else None})
    ratios = {"se_overhead": median[(ours, "se_resnet20")] / median[(ours, "resnet20")]}
    if "torch" in impls:
        ratios["step_vs_torch"] = median[(ours, "se_resnet20")] / median[("torch", "se_resnet20")]
        ratios["resnet20_step_vs_torch"] = median[(ours, "resnet20")] / median[("torch", "resnet20")]
        ratios["torch_se_overhead"] = median[("torch", "se_resnet20")] / median[("torch", "resnet20")]
        if args.threads == 1:  # CPU time: the work, whatever else runs on the machine
            ratios["cpu_step_vs_torch"] = cpu_median[(ours, "se_resnet20")] / cpu_median[("torch", "se_resnet20")]
            ratios["cpu_resnet20_step_vs_torch"] = cpu_median[(ours, "resnet20")] / cpu_median[("torch", "resnet20")]
    evals = {(impl, name): build_eval(impl, name, args.device, args.eval_batch)
             for name in MODELS for impl in impls}
    eval_times = time_interleaved(evals, max(1, warmup // 2), repeats)
    eval_median = {key: statistics.median(ts) for key, ts in eval_times.items()}
    result["inference"] = [{"impl": impl, "model": name, "batch": args.eval_batch,
                            "median_ms": eval_median[(impl, name)] * 1e3,
                            "gflops": flops / eval_median[(impl, name)] / 1e9}
                           for (impl, name), (_, _, flops) in evals.items()]
    if "torch" in impls:
        ratios["inference_vs_torch"] = eval_median[(ours, "se_resnet20")] / eval_median[("torch", "se_resnet20")]
        ratios["resnet20_inference_vs_torch"] = eval_median[(ours, "resnet20")] / eval_median[("torch", "resnet20")]
    del evals
    if args.load and args.device == "cpu":
        loaded = time_under_load({key: case for key, case in cases.items() if key[1] == "se_resnet20"},
                                 max(3, repeats // 2))
        result["under_load"] = {impl: {"quiet_ms": q * 1e3, "loaded_ms": busy * 1e3, "slowdown": busy / q}
                                for (impl, _), (q, busy) in loaded.items()}
        for impl, row in result["under_load"].items():
            ratios[f"{impl}_load_slowdown"] = row["slowdown"]
    if args.device == "gpu":
        import cupy

        result["gpu_memory_mib"] = {"cupy_pool_total": cupy.get_default_memory_pool().total_bytes() / 2**20}
        if "torch" in impls:
            import torch

            result["gpu_memory_mib"]["torch_max_allocated"] = torch.cuda.max_memory_allocated() / 2**20
    del cases
    if args.device == "cpu" and not args.no_memory:
        names = ("se_resnet20",) if args.quick else MODELS
        memory = {f"{impl}/{name}": run_probe(args, "memory", impl=impl, model=name)
                  for name in names for impl in impls}
        result["memory"] = memory
        ours_mem, torch_mem = memory[f"{ours}/se_resnet20"], memory.get("torch/se_resnet20", {"error": ""})
        if "error" not in ours_mem and "error" not in torch_mem:
            ratios["memory_vs_torch"] = ours_mem["training_mib"] / torch_mem["training_mib"]
            ratios["process_memory_vs_torch"] = ours_mem["step_peak_rss_mib"] / torch_mem["step_peak_rss_mib"]
    if args.device == "cpu" and not args.no_compile:
        with tempfile.TemporaryDirectory(prefix="sescratch-numba-cache-") as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            cold = run_probe(args, "compile", env, model="se_resnet20")
            warm = run_probe(args, "compile", env, model="se_resnet20")
        result["compile"] = {"cold": cold, "warm": warm}
        if "error" not in warm:
            ratios["warm_first_call_s"] = warm["first_call_overhead_s"]
    result["ratios"] = ratios
    result["load_avg_1m_after"] = os.getloadavg()[0]
    report(result, sys.stderr if args.json == "-" else sys.stdout)
    if args.json:
        text = json.dumps(result, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    if args.profile and args.device == "cpu":
        profile_step("se_resnet20", args.batch)
    return 0


def report(result, out):
    m = result["machine"]
    print(f"Training step, batch {result['batch']}, 3x32x32, float32, device {result['device']}; "
          f"{m.get('cpu', '?')}, {m['cpus']} CPUs, load {m['load_avg_1m']:.1f}; "
          f"median of {result['repeats']} after {result['warmup']} warm-ups; Numba threading layer "
          f"{m.get('numba_threading_layer', '?')}; {m.get('blas_kernels', 'BLAS kernels ?')}", file=out)
    if m["load_avg_1m"] > 0.5 * m["cpus"]:
        print(f"WARNING: load average {m['load_avg_1m']:.1f} on {m['cpus']} CPUs: other processes compete; "
              "multi-threaded steps then wait on descheduled threads (rerun idle, or compare with "
              "NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1)", file=out)
    peak = result.get("gemm_peak_gflops")
    if result.get("threads"):
        print(f"threads: {result['threads']} (Numba and PyTorch)", file=out)
    print(f"{'model':<12} {'impl':<6} {'median ms':>10} {'min ms':>8} {'CPU ms':>8} {'GFLOP/s':>8} {'of peak':>8}",
          file=out)
    for s in result["steps"]:
        share = f"{s['of_gemm_peak']:8.1%}" if s.get("of_gemm_peak") else f"{'-':>8}"
        print(f"{s['model']:<12} {s['impl']:<6} {s['median_ms']:10.1f} {s['min_ms']:8.1f} {s['cpu_ms']:8.1f} "
              f"{s['gflops']:8.1f} {share}", file=out)
    if peak:
        print(f"(of peak: of the float32 GEMM peak measured in this run, {peak:.0f} GFLOP/s, "
              "NumPy on square products)", file=out)
    if "inference" in result:
        print(f"\ninference, eval mode, batch {result['inference'][0]['batch']}:", file=out)
        for s in result["inference"]:
            print(f"{s['model']:<12} {s['impl']:<6} {s['median_ms']:10.1f} ms {s['gflops']:8.1f} GFLOP/s", file=out)
    if "under_load" in result:
        print("\nSE-ResNet-20 step beside a process spinning on one core:", file=out)
        for impl, row in result["under_load"].items():
            print(f"  {impl:<6} {row['quiet_ms']:8.1f} ms quiet, {row['loaded_ms']:8.1f} ms loaded: "
                  f"{row['slowdown']:.2f}x", file=out)
    if "memory" in result:
        print(f"\n{'memory (MiB)':<24} {'after imports':>13} {'step peak':>10} {'training':>9}", file=out)
        for key, mem in result["memory"].items():
            if "error" in mem:
                print(f"{key:<24} error: {mem['error']}", file=out)
            else:
                print(f"{key:<24} {mem['rss_after_imports_mib']:13.0f} {mem['step_peak_rss_mib']:10.0f} "
                      f"{mem['training_mib']:9.0f}", file=out)
    if "compile" in result:
        print("\nfirst step (import + JIT/cache load) minus a steady step, SE-ResNet-20:", file=out)
        for kind, c in result["compile"].items():
            if "error" in c:
                print(f"  {kind:<5} error: {c['error']}", file=out)
            else:
                print(f"  {kind:<5} {c['first_call_overhead_s']:7.2f} s  (import {c['import_s']:.2f} s, "
                      f"first step {c['first_step_s']:.2f} s, steady {c['steady_step_s']:.2f} s)", file=out)
    print("\nratios (target):", file=out)
    for key, value in result["ratios"].items():
        target = result["targets"].get(key)
        mark = "" if target is None else (f"  (<= {target})  " + ("ok" if value <= target else "MISSED"))
        unit = " s" if key.endswith("_s") else "x"
        print(f"  {key:<28} {value:7.3f}{unit}{mark}", file=out)
    print(f"load average {result.get('load_avg_1m_before', float('nan')):.2f} before, "
          f"{result.get('load_avg_1m_after', float('nan')):.2f} after", file=out)


if __name__ == "__main__":
    sys.exit(main())
