"""Classifier-free guidance (Ho & Salimans 2022) for a class-conditional denoiser."""

from __future__ import annotations

import torch


class Guided(torch.nn.Module):
    """A class-conditional denoiser under classifier-free guidance:
    ``(1 + w) * logits(x | y) - w * logits(x | null)`` (equal, after the SUBS renormalization,
    to the same mix of log-probabilities). ``labels`` are used unless a call passes ``cond``
    (labels per row); ``model.num_classes`` is the null label."""

    def __init__(self, model, labels: torch.Tensor, weight: float):
        super().__init__()
        self.model, self.labels, self.weight = model, labels, float(weight)
        self.null = model.num_classes

    def forward(self, tokens, sigma=None, cond=None):
        y = (self.labels if cond is None else cond).to(tokens.device)
        if y.ndim == 0:
            y = y.expand(tokens.shape[0])
        lc = self.model(tokens, sigma=sigma, cond=y).float()
        if self.weight == 0:
            return lc
        lu = self.model(tokens, sigma=sigma, cond=torch.full_like(y, self.null)).float()
        return (1.0 + self.weight) * torch.log_softmax(lc, -1) - self.weight * torch.log_softmax(
            lu, -1)
