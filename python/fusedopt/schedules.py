"""Learning-rate schedules: each is a callable ``schedule(step) -> lr``, step 0 being the first update.

    sched = fusedopt.schedules.linear_warmup(fusedopt.schedules.cosine(0.1, T_max=900), warmup_steps=100)
    for t, idx in enumerate(fusedopt.data.minibatches(n, 32, epochs=10)):
        sched.apply(opt, t)          # sets lr in every param group (fusedopt or torch optimizer)
        ...

The hyperparameter names are those of torch's schedulers with the same shape (``step_size``,
``gamma``, ``milestones``, ``T_max``, ``eta_min``, ``T_0``, ``T_mult``), and the values are their
closed forms, counted in the steps you pass (updates or epochs, as you call it). To drive a torch
optimizer through ``torch.optim.lr_scheduler.LambdaLR``, build the optimizer with ``lr=sched.lr`` and
pass ``lr_lambda=sched.lr_lambda``.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Callable, Sequence

from ._arguments import real as _real
from ._arguments import whole as _int

__all__ = ["Schedule", "constant", "step_decay", "multi_step", "exponential", "cosine", "cosine_warm_restarts",
           "linear_warmup", "linear_scaling"]


class Schedule:
    """A learning rate per step. ``lr`` is the base rate (the rate at step 0 for all but warm-up)."""

    def __init__(self, lr: float, at: Callable[[int], float], description: str) -> None:
        self.lr = _real("lr", lr, lo=0.0)
        self._at = at
        self._description = description

    def __call__(self, step: int) -> float:
        step = _int("step", step, 0)
        try:
            return self._at(step)
        except OverflowError:
            raise ValueError(f"{self!r}: the learning rate at step {step} overflows a float") from None

    def apply(self, optimizer: Any, step: int) -> float:
        """Sets ``lr`` of every param group of ``optimizer`` (fusedopt or torch) to this step's
        rate; returns it."""
        groups = getattr(optimizer, "param_groups", None)
        if groups is None:
            raise TypeError(f"optimizer: expected an optimizer with param_groups, got {type(optimizer).__name__}")
        lr = self(step)
        for group in groups:
            group["lr"] = lr
        return lr

    def lr_lambda(self, step: int) -> float:
        """The factor ``torch.optim.lr_scheduler.LambdaLR`` multiplies the optimizer's initial lr by
        (build the optimizer with ``lr=self.lr``)."""
        if self.lr == 0.0:
            raise ValueError("lr_lambda: the schedule's base lr is 0, so there is no factor to multiply it by")
        return self(step) / self.lr

    def __repr__(self) -> str:
        return self._description


def constant(lr: float) -> Schedule:
    """lr at every step."""
    lr = _real("lr", lr, lo=0.0)
    return Schedule(lr, lambda t: lr, f"constant(lr={lr})")


def step_decay(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """lr · gamma^⌊t / step_size⌋ (torch's ``StepLR``)."""
    lr, step_size, gamma = _real("lr", lr, lo=0.0), _int("step_size", step_size, 1), _real("gamma", gamma, lo=0.0)
    return Schedule(lr, lambda t: lr * gamma ** (t // step_size),
                    f"step_decay(lr={lr}, step_size={step_size}, gamma={gamma})")


def multi_step(lr: float, milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
    """lr · gamma^(number of milestones <= t) (torch's ``MultiStepLR``); milestones increasing."""
    lr, gamma = _real("lr", lr, lo=0.0), _real("gamma", gamma, lo=0.0)
    if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
        raise TypeError(f"milestones: expected a sequence of ints, got {type(milestones).__name__}")
    marks = [_int(f"milestones[{i}]", m, 0) for i, m in enumerate(milestones)]
    if any(b <= a for a, b in zip(marks, marks[1:])):
        raise ValueError(f"milestones: expected strictly increasing steps, got {marks}")
    return Schedule(lr, lambda t: lr * gamma ** bisect.bisect_right(marks, t),
                    f"multi_step(lr={lr}, milestones={marks}, gamma={gamma})")


def exponential(lr: float, gamma: float) -> Schedule:
    """lr · gamma^t (torch's ``ExponentialLR``)."""
    lr, gamma = _real("lr", lr, lo=0.0), _real("gamma", gamma, lo=0.0)
    return Schedule(lr, lambda t: lr * gamma ** t, f"exponential(lr={lr}, gamma={gamma})")


def _cosine(lr: float, eta_min: float, t: int, period: int) -> float:
    return eta_min + (lr - eta_min) * (1.0 + math.cos(math.pi * t / period)) / 2.0


def cosine(lr: float, T_max: int, eta_min: float = 0.0) -> Schedule:
    """eta_min + (lr − eta_min)·(1 + cos(π·t / T_max))/2 for t <= T_max, then eta_min (torch's
    ``CosineAnnealingLR`` closed form, which rises again after T_max; use
    :func:`cosine_warm_restarts` for cycles)."""
    lr, T_max, eta_min = _real("lr", lr, lo=0.0), _int("T_max", T_max, 1), _real("eta_min", eta_min, lo=0.0)
    return Schedule(lr, lambda t: _cosine(lr, eta_min, min(t, T_max), T_max),
                    f"cosine(lr={lr}, T_max={T_max}, eta_min={eta_min})")


def cosine_warm_restarts(lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0) -> Schedule:
    """SGDR (Loshchilov & Hutter, 2017; torch's ``CosineAnnealingWarmRestarts``): cycles of
    T_0, T_0·T_mult, T_0·T_mult², ... steps; in each, eta_min + (lr − eta_min)·(1 + cos(π·T_cur/T_i))/2
    with T_cur the steps since the cycle began, back to lr at each restart."""
    lr, eta_min = _real("lr", lr, lo=0.0), _real("eta_min", eta_min, lo=0.0)
    T_0, T_mult = _int("T_0", T_0, 1), _int("T_mult", T_mult, 1)

    def at(t: int) -> float:
        period = T_0
        if T_mult == 1:
            t %= T_0
        else:
            while t >= period:
                t -= period
                period *= T_mult
        return _cosine(lr, eta_min, t, period)

    return Schedule(lr, at, f"cosine_warm_restarts(lr={lr}, T_0={T_0}, T_mult={T_mult}, eta_min={eta_min})")


def linear_warmup(schedule: Schedule, warmup_steps: int, start_factor: float = 0.0) -> Schedule:
    """A linear warm-up before ``schedule``: for t < warmup_steps,
    schedule(0)·(start_factor + (1 − start_factor)·t / warmup_steps); then schedule(t − warmup_steps),
    so the schedule starts where the warm-up ends (torch's ``SequentialLR`` of ``LinearLR`` and the
    schedule, with the milestone at warmup_steps)."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected a fusedopt.schedules.Schedule, got {type(schedule).__name__}")
    warmup_steps = _int("warmup_steps", warmup_steps, 1)
    start_factor = _real("start_factor", start_factor, lo=0.0, hi=1.0)
    peak = schedule(0)

    def at(t: int) -> float:
        if t < warmup_steps:
            return peak * (start_factor + (1.0 - start_factor) * t / warmup_steps)
        return schedule(t - warmup_steps)

    return Schedule(schedule.lr, at, f"linear_warmup({schedule!r}, warmup_steps={warmup_steps}, "
                                     f"start_factor={start_factor})")


def linear_scaling(lr: float, batch_size: int, base_batch_size: int = 256) -> float:
    """The linear scaling rule (Goyal et al., 2017): a learning rate ``lr`` tuned for
    ``base_batch_size`` becomes lr · batch_size / base_batch_size at ``batch_size`` (pair it with a
    warm-up when the result is large)."""
    lr = _real("lr", lr, lo=0.0)
    return lr * _int("batch_size", batch_size, 1) / _int("base_batch_size", base_batch_size, 1)
