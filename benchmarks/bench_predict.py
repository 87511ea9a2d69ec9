"""Single-image predict latency and peak memory on the CPU: sescratch vs PyTorch, same run.

    python benchmarks/bench_predict.py                 # se_resnet50, one 3x224x224 image, 10 repeats
    python benchmarks/bench_predict.py senet154 5      # NAME [REPEATS]; NAME one of the release's

Both sides run the same weights (random, with BN statistics) in float32 and eval mode: ours is
``sescratch.models.create(NAME)`` with the current CPU kernel family (``SESCRATCH_BACKEND``),
PyTorch's is the independent definition of the SENet release in ``tests/interop/release_senet.py``
(``torch.inference_mode``, its default threads). The parent process writes the weights once, in
the release's naming; each side builds its model from that file in its own process, so the peak
resident memory (``ru_maxrss``) is its own; the "+N MiB" is how far building the model and the
forwards raised it above the peak reached by the imports. Prints the median latency over the repeats after one warm-up, the ratio
ours / torch, and the agreement of the logits.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(side: str, name: str, repeats: int, weights: str) -> dict:
    """Build one side from the weights file, then time ``repeats`` single-image forwards."""
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    if side == "ours":
        from sescratch.interop.loading import load_pretrained

        before = _peak_mib()
        model = load_pretrained(name, weights)[0].eval()

        def run():
            return model(x)
    else:
        sys.path.insert(0, str(ROOT))
        import torch

        from tests.interop.release_senet import ReleaseSENet

        before = _peak_mib()
        net = ReleaseSENet(name, num_classes=1000).eval()
        with np.load(weights) as f:
            net.load_state_dict({k: torch.from_numpy(f[k]) for k in f.files})
        xt = torch.from_numpy(x)

        def run():
            with torch.inference_mode():
                return net(xt).numpy()
    times, logits = [], None
    for _ in range(repeats + 1):
        start = time.perf_counter()
        logits = run()
        times.append(time.perf_counter() - start)
    return {"side": side, "median_s": float(np.median(times[1:])), "first_s": times[0],
            "peak_mib": _peak_mib(), "model_mib": _peak_mib() - before, "logits": np.asarray(logits).tolist()}


def main(name: str = "se_resnet50", repeats: int = 10) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.interop.release_senet import ReleaseSENet, randomize

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / f"{name}.npz"  # the release's naming, random weights with BN statistics
        net = randomize(ReleaseSENet(name, num_classes=1000), 0)
        np.savez(weights, **{k: v.numpy() for k, v in net.state_dict().items()})
        del net
        for side in ("ours", "torch"):
            out = subprocess.run([sys.executable, __file__, "--worker", side, name, str(repeats), str(weights)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            results[side] = json.loads(out.stdout.splitlines()[-1])
    ours, theirs = results["ours"], results["torch"]
    a, b = np.array(ours["logits"]), np.array(theirs["logits"])
    print(f"{name}, one 3x224x224 image, float32, CPU ({os.cpu_count()} cores), {repeats} repeats")
    for r in (ours, theirs):
        print(f"  {r['side']:5s}  median {1000 * r['median_s']:8.1f} ms  (first {1000 * r['first_s']:.0f} ms)  "
              f"peak RSS {r['peak_mib']:.0f} MiB  (+{r['model_mib']:.0f} MiB over the peak after imports)")
    print(f"  ratio ours / torch: {ours['median_s'] / theirs['median_s']:.2f}x;  logits max rel. difference "
          f"{np.abs(a - b).max() / np.abs(b).max():.1e}")


def parse_args(argv=None) -> argparse.Namespace:
    """NAME (one of the SENet release's models) and REPEATS (>= 1), checked before any work."""
    sys.path.insert(0, str(ROOT))
    from tests.interop.release_senet import RELEASE

    parser = argparse.ArgumentParser(description="Single-image predict latency: sescratch vs PyTorch.")
    parser.add_argument("name", nargs="?", default="se_resnet50", choices=list(RELEASE),
                        help="a model of the SENet release (default: se_resnet50)")
    parser.add_argument("repeats", nargs="?", type=int, default=10, help="timed forwards (default: 10)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"repeats must be >= 1, got {args.repeats}")
    return args


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])))
    else:
        args = parse_args()
        main(args.name, args.repeats)
