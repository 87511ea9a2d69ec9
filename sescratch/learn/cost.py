"""Check for tutorial 07: what one SE block costs, in parameters and multiply-accumulates.

Reference: :class:`sescratch.nn.SEBlock` counted by :func:`sescratch.summary.summary` (the
parameters it holds, and the MACs of its squeeze, two FCs and scale for one image).
"""
from __future__ import annotations

from sescratch import nn
from sescratch.learn._grading import as_tuple, call, passed, rng_for

__all__ = ["check_se_block_cost"]


def check_se_block_cost(fn, *, cases: int = 6, seed=None) -> float:
    """Grade ``fn(C, H, W, r, bias) -> (params, macs)`` for one SE block on a C x H x W map.

    ``params`` counts both FCs' weights (and biases when ``bias``), with the hidden width
    ``max(C // r, 1)``; ``macs`` counts, for one image, the squeeze (one addition per value of
    the map), the two FCs (one multiply-accumulate per weight) and the scale (one multiplication
    per value). Counts are integers, so the relative error of a pass is 0.
    """
    from sescratch.summary import summary

    check, rng = "check_se_block_cost", rng_for(seed)
    for i in range(cases):
        C = int(rng.integers(1, 129))
        r = int(rng.choice([1, 2, 4, 8, 16, 32])) if i else 16
        if i == 1:
            C, r = int(rng.integers(1, 16)), 16  # the floor of one hidden unit matters
        H, W, bias = int(rng.integers(1, 33)), int(rng.integers(1, 33)), bool(rng.integers(0, 2))
        block = nn.SEBlock(C, r, bias=bias)
        counted = summary(block, (C, H, W))
        params_ref, macs_ref = block.num_parameters(), counted.se_macs
        case = f"C={C}, H={H}, W={W}, r={r}, bias={bias} (hidden width {block.hidden})"
        params, macs = as_tuple(check, call(check, fn, C, H, W, r, bias), ("params", "macs"))
        if params != params_ref:
            hint = ("the hidden width is a whole number, max(C // r, 1) (at least one unit), not C / r"
                    if params in (2 * C * (C // r) + (C + C // r) * bias, 2 * C * C / r + (C + C / r) * bias) else
                    "each FC has one bias per output: C/r for the first, C for the second"
                    if bias and params == 2 * C * block.hidden else
                    "two FCs, C -> hidden and hidden -> C, plus their biases when bias is True")
            raise AssertionError(f"{check}: params is {params}, expected {params_ref} for {case}. Hint: {hint}")
        if macs != macs_ref:
            hint = ("the squeeze (C*H*W additions) and the scale (C*H*W multiplications) count too"
                    if macs == 2 * C * block.hidden else
                    "squeeze C*H*W + first FC C*hidden + second FC hidden*C + scale C*H*W")
            raise AssertionError(f"{check}: macs is {macs}, expected {macs_ref} for {case}. Hint: {hint}")
    return passed(check, [0.0], cases)
