"""Noise schedules for absorbing-state (masked) diffusion.

``alpha(t)`` is the probability that a token is still unmasked at time t in [0, 1];
``weight(t) = -alpha'(t) / (1 - alpha(t))`` is the continuous-time NELBO weight.
"""

from __future__ import annotations

import torch


class LogLinearSchedule:
    """alpha_t = 1 - (1 - eps) t, so sigma(t) = -log alpha_t and the NELBO weight is exactly 1/t."""

    name = "loglinear"

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - (1.0 - self.eps) * t

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        # -alpha'(t) / (1 - alpha(t)) = (1 - eps) / ((1 - eps) t) = 1 / t
        return 1.0 / t

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log(self.alpha(t))


def build_schedule(cfg: dict) -> LogLinearSchedule:
    if cfg["schedule"] == "loglinear":
        return LogLinearSchedule(cfg["eps"])
    raise ValueError(f"unknown schedule {cfg['schedule']!r}")
