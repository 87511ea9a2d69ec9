"""Learning-rate schedules as pure functions of training time.

A schedule maps ``t`` — the number of epochs done, as a float — to a learning rate. The trainer
asks either once per epoch (``t = epoch``, the value holds for the whole epoch, like PyTorch's
``scheduler.step()`` after each epoch) or once per iteration (``t = epoch + i / iterations``,
a smooth decay). Step and multi-step schedules give the same values either way, since they only
change at whole epochs. Being stateless, schedules need no saving: a resumed run recomputes
``lr(t)``.

* :class:`Step` — ``lr * gamma ** floor(t / step_size)``; the paper's "divided by 10 every 30
  epochs" is ``Step(lr, 30, 0.1)``.
* :class:`MultiStep` — ``lr * gamma ** (number of milestones <= t)``.
* :class:`Cosine` — ``min_lr + (lr - min_lr) * (1 + cos(pi * t / total)) / 2``.
* :class:`LinearWarmup` — wraps any schedule and multiplies it by a factor rising linearly from
  ``start_factor`` at ``t = 0`` to 1 at ``t = warmup`` (PyTorch's ``LinearLR`` chained).
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence

__all__ = ["SCHEDULES", "Schedule", "Constant", "Step", "MultiStep", "Cosine", "LinearWarmup",
           "make_schedule"]


class Schedule:
    """Base class: ``schedule(t)`` is the learning rate after ``t`` epochs."""

    def __init__(self, base_lr: float):
        self.base_lr = float(base_lr)

    def __call__(self, t: float) -> float:
        return self.base_lr * self.factor(t)

    def factor(self, t: float) -> float:
        raise NotImplementedError


class Constant(Schedule):
    def factor(self, t: float) -> float:
        return 1.0


class Step(Schedule):
    def __init__(self, base_lr: float, step_size: float = 30, gamma: float = 0.1):
        super().__init__(base_lr)
        self.step_size, self.gamma = step_size, gamma

    def factor(self, t: float) -> float:
        return self.gamma ** math.floor(t / self.step_size)


class MultiStep(Schedule):
    def __init__(self, base_lr: float, milestones: Sequence[float], gamma: float = 0.1):
        super().__init__(base_lr)
        self.milestones, self.gamma = sorted(milestones), gamma

    def factor(self, t: float) -> float:
        return self.gamma ** bisect.bisect_right(self.milestones, t)


class Cosine(Schedule):
    def __init__(self, base_lr: float, total: float, min_lr: float = 0.0):
        super().__init__(base_lr)
        if total <= 0:
            raise ValueError(f"Cosine: total epochs must be > 0, got {total}")
        self.total, self.min_lr = total, float(min_lr)

    def __call__(self, t: float) -> float:
        t = min(max(t, 0.0), self.total)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * t / self.total))

    def factor(self, t: float) -> float:
        return self(t) / self.base_lr if self.base_lr else 1.0


class LinearWarmup(Schedule):
    def __init__(self, inner: Schedule, warmup: float, start_factor: float = 0.1):
        super().__init__(inner.base_lr)
        if warmup <= 0 or not 0 <= start_factor <= 1:
            raise ValueError(f"LinearWarmup: need warmup > 0 and 0 <= start_factor <= 1 "
                             f"(got {warmup}, {start_factor})")
        self.inner, self.warmup, self.start_factor = inner, warmup, start_factor

    def __call__(self, t: float) -> float:
        return self.inner(t) * self.factor(t)

    def factor(self, t: float) -> float:
        if t >= self.warmup:
            return 1.0
        return self.start_factor + (1.0 - self.start_factor) * t / self.warmup


SCHEDULES = ("constant", "step", "multistep", "cosine")


def make_schedule(name: str, base_lr: float, epochs: float, *, step_size: float = 30,
                  milestones: Sequence[float] | None = None, gamma: float = 0.1,
                  min_lr: float = 0.0, warmup_epochs: float = 0,
                  warmup_start_factor: float = 0.1) -> Schedule:
    """Build a schedule by name (one of :data:`SCHEDULES`), with optional linear warm-up.

    ``multistep`` without ``milestones`` uses 50% and 75% of ``epochs`` (the CIFAR ResNet recipe),
    rounded down to whole epochs (at least 1), so that it changes only between epochs.
    """
    if name == "constant":
        schedule: Schedule = Constant(base_lr)
    elif name == "step":
        schedule = Step(base_lr, step_size, gamma)
    elif name == "multistep":
        schedule = MultiStep(base_lr, milestones or tuple(max(1, math.floor(epochs * f)) for f in (0.5, 0.75)),
                             gamma)
    elif name == "cosine":
        schedule = Cosine(base_lr, epochs, min_lr)
    else:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(SCHEDULES)}")
    if warmup_epochs > 0:
        schedule = LinearWarmup(schedule, warmup_epochs, warmup_start_factor)
    return schedule
