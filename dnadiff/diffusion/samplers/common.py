"""What every sampler shares: the float64 inverse-CDF categorical draw, temperature and nucleus,
the per-row denoiser cache (:class:`RowEvaluator`) and the loop head of the samplers that walk a
grid of ``steps`` times (:class:`StepGrid`)."""

from __future__ import annotations

import torch

#: the last time of every sampler's time grid (1 down to T_MIN in ``steps`` steps), as in the
#: MDLM reference sampler: a constant of the grid, not a setting (the grid's last step reveals
#: whatever is still masked, so T_MIN only shifts the times of the steps before it, by at
#: most T_MIN)
T_MIN = 1e-5


def categorical_float64(probs: torch.Tensor, generator=None) -> torch.Tensor:
    """Draw one index per row of ``probs`` [..., V] by inverse CDF in float64."""
    p = probs.double()
    cdf = p.cumsum(-1)
    u = torch.rand(p.shape[:-1] + (1,), generator=generator, dtype=torch.float64)
    u = u.to(p.device) * cdf[..., -1:]
    idx = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    return idx.clamp_max(p.shape[-1] - 1)


def sampling_probs(logp: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0
                   ) -> torch.Tensor:
    """Float64 probabilities from log-probabilities, with temperature and nucleus (top-p).

    Ids with zero probability (mask, non-generable) stay at zero whatever the options.
    """
    lp = logp.double()
    if temperature != 1.0:
        lp = lp / temperature
    p = torch.softmax(lp, dim=-1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(p, dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass of strictly more probable tokens
        keep_sorted = before < top_p  # the most probable token is always kept
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        p = torch.where(keep, p, torch.zeros_like(p))
        p = p / p.sum(-1, keepdim=True)
    return p


def rows_of(cond, rows: torch.Tensor):
    """The conditioning of the batch rows ``rows`` (labels or vectors per row are gathered; a
    single label applies to every row; a block diffusion context gives its rows' context)."""
    if hasattr(cond, "rows"):
        return cond.rows(rows)
    if cond is None or not torch.is_tensor(cond) or cond.ndim == 0:
        return cond
    return cond[rows]


class RowEvaluator:
    """``logp(x, t)`` of the rows that need it, the others kept from their last evaluation
    (the per-row cache); counts forward passes and row evaluations."""

    def __init__(self, mdlm, model, cond=None):
        self.mdlm, self.model, self.cond = mdlm, model, cond
        self.logp, self.passes, self.rows = None, 0, 0

    def __call__(self, x: torch.Tensor, t, need: torch.Tensor) -> torch.Tensor:
        """``t``: one time for every row, or a tensor of one time per row."""
        idx = need.nonzero().squeeze(1)
        if idx.numel():
            tt = (t[idx].to(x.device, torch.float32) if torch.is_tensor(t)
                  else torch.full((idx.numel(),), t, device=x.device))
            out = self.mdlm.log_probs(self.model, x[idx], tt, rows_of(self.cond, idx))
            if self.logp is None:
                self.logp = out.new_zeros(x.shape + out.shape[-1:])
            self.logp[idx] = out
            self.passes += 1
            self.rows += idx.numel()
        return self.logp

    def info(self) -> dict:
        return {"forward_passes": self.passes, "row_evaluations": self.rows}


class StepGrid:
    """The loop head of a sampler that walks ``steps`` times from 1 down to ``t_min``: iterating
    yields ``(i, masked, logp)`` per step while a position of ``x`` (changed in place by the
    sampler) is masked, ``logp`` evaluated for the rows with something masked. With ``cache``
    and no time conditioning only the rows the sampler marked ``stale`` (those that changed in
    the last step) go through the network again."""

    def __init__(self, mdlm, model, x: torch.Tensor, steps: int, t_min: float, cond=None,
                 cache: bool = True):
        self.mdlm, self.x, self.steps = mdlm, x, steps
        self.ts = torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)
        self.use_cache = cache and not mdlm.time_conditioning
        self.net = RowEvaluator(mdlm, model, cond)
        self.stale = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)

    def __iter__(self):
        for i in range(self.steps):
            masked = self.x == self.mdlm.mask_id
            active = masked.any(1)
            if not active.any():
                break
            yield i, masked, self.net(self.x, float(self.ts[i]),
                                      active & self.stale if self.use_cache else active)

    def info(self) -> dict:
        return self.net.info()
