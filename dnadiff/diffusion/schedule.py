"""Noise schedules for absorbing-state (masked) diffusion.

``alpha(t)`` is the probability that a token is still unmasked at time t in [0, 1], with
alpha(0) = 1 and alpha(1) = eps. The continuous-time NELBO weight is
``weight(t) = -alpha'(t) / (1 - alpha(t))``; the discrete-time (T steps) weight of step
t_i = i/T is ``T (alpha(s) - alpha(t)) / (1 - alpha(t))`` with s = (i - 1)/T. The bound does
not depend on the schedule, only its variance does (log-linear has the lowest).
"""

from __future__ import annotations

import math

import torch


class Schedule:
    """A masking schedule: ``alpha(t)``, the probability that a token is still unmasked at time
    t."""

    name = "base"

    def __init__(self, eps: float):
        self.eps = eps

    def alpha(self, t):
        raise NotImplementedError

    def weight(self, t):
        raise NotImplementedError

    def time_of(self, alpha):
        """The time t at which ``alpha(t) = alpha`` (the schedule's inverse)."""
        raise NotImplementedError

    def sigma(self, t):
        """Total noise level -log alpha_t (what a time-conditioned backbone sees)."""
        return -torch.log(self.alpha(t))

    def discrete_weight(self, t, T: int):
        """Weight of the discrete-time (T-step) NELBO term at grid time t = i/T."""
        s = (t - 1.0 / T).clamp_min(0.0)
        return T * (self.alpha(s) - self.alpha(t)) / (1.0 - self.alpha(t))


class LogLinearSchedule(Schedule):
    """alpha_t = 1 - (1 - eps) t: sigma(t) = -log alpha_t and the NELBO weight is exactly 1/t."""

    name = "loglinear"

    def alpha(self, t):
        return 1.0 - (1.0 - self.eps) * t

    def weight(self, t):
        # -alpha'(t) / (1 - alpha(t)) = (1 - eps) / ((1 - eps) t) = 1 / t
        return 1.0 / t

    def time_of(self, alpha):
        return (1.0 - alpha) / (1.0 - self.eps)


class CosineSchedule(Schedule):
    """alpha_t = 1 - (1 - eps)(1 - cos(pi t / 2)): masks slowly at first, fast near t = 1.

    weight(t) = (pi/2) sin(pi t / 2) / (1 - cos(pi t / 2)).
    """

    name = "cosine"

    def alpha(self, t):
        return 1.0 - (1.0 - self.eps) * (1.0 - torch.cos(0.5 * math.pi * t))

    def weight(self, t):
        half = 0.5 * math.pi * t
        return 0.5 * math.pi * torch.sin(half) / (1.0 - torch.cos(half))

    def time_of(self, alpha):
        return torch.arccos(1.0 - (1.0 - alpha) / (1.0 - self.eps)) / (0.5 * math.pi)


SCHEDULES = {cls.name: cls for cls in (LogLinearSchedule, CosineSchedule)}


def build_schedule(cfg: dict) -> Schedule:
    """The schedule named by the ``diffusion`` config section."""
    try:
        return SCHEDULES[cfg["schedule"]](cfg["eps"])
    except KeyError:
        raise ValueError(f"unknown schedule {cfg['schedule']!r} (known: "
                         f"{', '.join(SCHEDULES)})") from None
