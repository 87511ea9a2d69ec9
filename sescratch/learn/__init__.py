"""Graded exercises: ``check_<piece>(fn)`` grades a learner's version of one piece of an SE net.

Each check draws random shapes and a random upstream gradient, runs ``fn`` and compares it in
float64 with sescratch's own op (:mod:`sescratch.ops`, :class:`sescratch.nn.SEBlock`, :class:`sescratch.train.SGD`,
:func:`sescratch.analysis.excitation_statistics`). A pass prints
``OK check_x: relative error 3e-13 (worst of 4 random cases)`` and returns that error; a fail
raises ``AssertionError`` saying which output is wrong, by how much, for which shapes, with a
hint at the most common mistake. ``seed=`` makes the random cases repeatable.

The exercise notebooks are ``tutorials/exercises/NN_*.ipynb``; worked solutions are in
:mod:`sescratch.learn.solutions`.

    >>> from sescratch import learn
    >>> learn.check_gap_forward(lambda x: x.mean(axis=(2, 3)))   # doctest: +ELLIPSIS
    OK check_gap_forward: relative error ...
"""
from sescratch.learn.analysis import check_class_excitations
from sescratch.learn.batchnorm import check_batchnorm_backward
from sescratch.learn.cost import check_se_block_cost
from sescratch.learn.conv import check_col2im, check_conv2d_naive, check_conv2d_naive_backward, check_im2col
from sescratch.learn.se import (
    check_excitation_backward,
    check_excitation_forward,
    check_gap_backward,
    check_gap_forward,
    check_se_block_backward,
)
from sescratch.learn.training import check_sgd_momentum_step, check_train_epoch

__all__ = [
    "check_conv2d_naive",
    "check_conv2d_naive_backward",
    "check_im2col",
    "check_col2im",
    "check_gap_forward",
    "check_gap_backward",
    "check_excitation_forward",
    "check_excitation_backward",
    "check_se_block_backward",
    "check_batchnorm_backward",
    "check_se_block_cost",
    "check_sgd_momentum_step",
    "check_train_epoch",
    "check_class_excitations",
]
