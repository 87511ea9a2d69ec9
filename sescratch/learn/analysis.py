"""Check for tutorial 09: the per-class excitation statistic of the paper's Fig. 6.

Reference: :func:`sescratch.analysis.excitation_statistics`, whose ``per_class`` entries are the
mean excitation of each channel over the images of one class, and whose ``class_spread`` is the
standard deviation of those means across classes, averaged over channels.
"""
from __future__ import annotations

import numpy as np

from sescratch.learn._grading import as_tuple, call, compare, passed, rng_for

__all__ = ["check_class_excitations"]


def check_class_excitations(fn, *, cases: int = 4, seed=None) -> float:
    """Grade ``fn(s, labels, num_classes) -> (means, spread)``.

    ``s`` (N, C) holds one block's excitations for N images, ``labels`` (N,) their classes in
    ``[0, num_classes)``; ``means`` (num_classes, C) is the mean of ``s`` over each class's images,
    ``spread`` the float ``means.std(axis=0).mean()``. Classes have unequal numbers of images,
    so an average of per-image values over the wrong axis cannot pass.
    """
    from sescratch.analysis import excitation_statistics

    check, rng, errors = "check_class_excitations", rng_for(seed), []
    for _ in range(cases):
        K, C = int(rng.integers(2, 6)), int(rng.integers(1, 9))
        counts = rng.integers(1, 7, size=K)
        labels = rng.permutation(np.repeat(np.arange(K), counts))
        bias = rng.uniform(0.2, 0.8, size=(K, C))  # class-specific gates, as a trained net's
        s = np.clip(bias[labels] + 0.1 * rng.standard_normal((len(labels), C)), 0, 1)  # N,C
        names = [f"class {k}" for k in range(K)]
        stats = excitation_statistics({"SE": s}, labels, names, list(range(K)))["blocks"]["SE"]
        means_ref = np.array([stats["per_class"][n] for n in names])  # K,C
        case = f"s {s.shape}, {K} classes with {counts.tolist()} images"
        out = call(check, fn, s.copy(), labels.copy(), K)
        means, spread = as_tuple(check, out, ("means", "spread"))
        hints = {"that is the mean over ALL images for every class: select the rows of s whose "
                 "label is k": np.broadcast_to(s.mean(axis=0), means_ref.shape),
                 "means must be (num_classes, C): one row per class, one column per channel":
                 means_ref.T}
        errors.append(compare(check, "means", means, means_ref, case, hints,
                              "means[k] = s[labels == k].mean(axis=0)"))
        errors.append(compare(check, "spread", np.asarray(spread, dtype=np.float64), stats["class_spread"],
                              case, {"the spread is the std ACROSS classes (axis 0), then the mean over "
                                     "channels": np.float64(means_ref.std(axis=1).mean())},
                              "spread = means.std(axis=0).mean()"))
    return passed(check, errors, cases)
