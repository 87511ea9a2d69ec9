"""Checks for tutorial 08: one SGD-with-momentum step, and one epoch of the training loop.

References: :class:`sescratch.train.SGD` (PyTorch's update, step for step) and, for the loop, a
small SE network of :mod:`sescratch.nn` trained on the same batches by the library's pieces
(:func:`sescratch.ops.softmax_cross_entropy`, ``Module.backward``, ``SGD.step``).
"""
from __future__ import annotations

import copy

import numpy as np

from sescratch import backend, nn, ops
from sescratch.learn._grading import as_tuple, call, compare, passed, rng_for

__all__ = ["check_sgd_momentum_step", "check_train_epoch"]


def check_sgd_momentum_step(fn, *, cases: int = 3, steps: int = 4, seed=None) -> float:
    """Grade ``fn(p, g, buf, lr, momentum, weight_decay) -> (p_new, buf_new)``.

    ``buf`` is ``None`` on the first step. The update of :class:`sescratch.train.SGD`::

        d = g + weight_decay * p;  buf = d (first step) or momentum * buf + d;  p = p - lr * buf

    Each case runs ``steps`` steps with a learning rate that changes every step (as a schedule
    does), so a learning rate folded into the buffer shows.
    """
    from sescratch.train import SGD

    check, rng, errors = "check_sgd_momentum_step", rng_for(seed), []
    for i in range(cases):
        shape = tuple(int(n) for n in rng.integers(1, 5, size=int(rng.integers(1, 3))))
        momentum, wd = float(rng.uniform(0.5, 0.95)), float(rng.choice([0.0, rng.uniform(1e-3, 0.1)]))
        wd = float(rng.uniform(1e-3, 0.1)) if i == 0 else wd  # weight decay in at least one case
        param = nn.Parameter(rng.standard_normal(shape))
        optimizer = SGD([param], lr=0.1, momentum=momentum, weight_decay=wd)
        p, buf = param.data.copy(), None
        lr_buf = ema_buf = None
        for t in range(steps):
            g, lr = rng.standard_normal(shape), float(rng.uniform(0.01, 0.5))
            case = f"p {shape}, step {t + 1} of {steps}, lr={lr:.3f}, momentum={momentum:.2f}, weight_decay={wd:.3g}"
            d = g + wd * p  # the mistakes below start from the learner's own p
            lr_buf = lr * d if lr_buf is None else momentum * lr_buf + lr * d
            ema_buf = d if ema_buf is None else momentum * ema_buf + (1 - momentum) * d
            lr_hint = ("the learning rate went into the buffer (buf = momentum*buf + lr*d); keep it "
                       "out: p = p - lr * buf, so a schedule's new lr applies at once")
            ema_hint = ("that buffer is an average (momentum*buf + (1-momentum)*d); SGD's is a sum, "
                        "buf = momentum*buf + d")
            hints = {lr_hint: p - lr_buf, ema_hint: p - lr * ema_buf}
            buf_hints = {lr_hint: lr_buf, ema_hint: ema_buf}
            if wd:
                hints["weight decay is added to the gradient before the momentum: d = g + wd * p"] = \
                    p - lr * (g if buf is None else momentum * buf + g)
            param.grad[...] = g
            optimizer.lr = lr
            optimizer.step()
            out = call(check, fn, p.copy(), g.copy(), None if buf is None else buf.copy(), lr, momentum, wd)
            p_new, buf_new = as_tuple(check, out, ("p_new", "buf_new"))
            errors.append(compare(check, "p_new", p_new, param.data, case, hints,
                                  "p_new = p - lr * buf_new"))
            errors.append(compare(check, "buf_new", buf_new, optimizer.momentum_buffers[0], case, buf_hints,
                                  "first step: buf_new = d; then buf_new = momentum * buf + d"))
            p, buf = param.data.copy(), np.asarray(buf_new, dtype=np.float64).copy()
    return passed(check, errors, cases * steps)


def _small_se_net(rng, classes):
    """Conv -> BN -> ReLU -> SE -> GAP -> FC: every kind of layer the loop must drive."""
    with nn.init.use_generator(rng):
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.SEBlock(4, hidden=2), nn.GlobalAvgPool(), nn.Linear(4, classes))


def _reference_epoch(model, optimizer, batches, *, zero_grad=True):
    losses = []
    for x, y in batches:
        logits = model(x)  # B,K
        loss, dlogits = ops.softmax_cross_entropy(logits, y)  # scalar and B,K
        if zero_grad:
            optimizer.zero_grad()
        model.backward(dlogits)  # adds into every Parameter.grad
        optimizer.step()
        losses.append(float(loss))
    return losses


def check_train_epoch(fn, *, cases: int = 2, seed=None) -> float:
    """Grade ``fn(model, optimizer, batches) -> losses``: one epoch of training.

    For every ``(x, y)`` in ``batches``: logits from the model, mean softmax cross-entropy and
    its gradient, zeroed gradients, the backward pass, one optimizer step; ``losses`` holds
    each batch's loss (floats, before that batch's step). Compared with the same epoch run by
    the library's pieces: the losses and every trained weight.
    """
    from sescratch.train import SGD

    check, rng, errors = "check_train_epoch", rng_for(seed), []
    for _ in range(cases):
        classes, n_batches, B = int(rng.integers(2, 5)), int(rng.integers(2, 5)), int(rng.integers(2, 7))
        batches = [(rng.standard_normal((B, 1, 5, 5)), rng.integers(0, classes, size=B))
                   for _ in range(n_batches)]
        model = _small_se_net(rng, classes).astype(np.float64)
        mine, accumulating, initial = (copy.deepcopy(model) for _ in range(3))
        case = f"{n_batches} batches of {B} images (1, 5, 5), {classes} classes"
        with backend.use("numpy"):
            ref_opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
            ref_losses = _reference_epoch(model, ref_opt, batches)
            acc_opt = SGD(accumulating.parameters(), lr=0.1, momentum=0.9)
            _reference_epoch(accumulating, acc_opt, batches, zero_grad=False)
            my_opt = SGD(mine.parameters(), lr=0.1, momentum=0.9)
            losses = call(check, fn, mine, my_opt, [(x.copy(), y.copy()) for x, y in batches])
        if not isinstance(losses, (list, tuple, np.ndarray)) or len(losses) != n_batches:
            raise AssertionError(f"{check}: expected a list of {n_batches} losses (one per batch), "
                                 f"got {losses!r:.200} ({case})")
        for (name, p_ref), (_, p_mine), (_, p_acc), (_, p_0) in zip(
                model.named_parameters(), mine.named_parameters(), accumulating.named_parameters(),
                initial.named_parameters()):
            hints = {"the gradients were never zeroed: Parameter.grad ADDS every backward, so "
                     "call optimizer.zero_grad() (or model.zero_grad()) before model.backward": p_acc.data}
            if my_opt.steps == 0:
                hints = {"optimizer.step() was never called": p_0.data}
            errors.append(compare(check, f"the weight {name!r} after the epoch", p_mine.data, p_ref.data,
                                  case, hints, "per batch: forward, loss, zero_grad, backward(dlogits), step"))
        errors.append(compare(check, "losses", np.asarray(losses, dtype=np.float64), ref_losses, case,
                              None, "loss, dlogits = ops.softmax_cross_entropy(model(x), y); append "
                              "float(loss) before the step"))
    return passed(check, errors, cases)
