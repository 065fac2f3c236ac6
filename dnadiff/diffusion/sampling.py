"""The draws every sampler shares (float64 inverse-CDF categorical draws, temperature and
nucleus), ancestral sampling for masked diffusion (with the per-row cache), left-to-right
sampling for the AR baseline (with a KV cache) and semi-autoregressive blocks for lengths beyond
the context. The other samplers are in :mod:`dnadiff.diffusion.parallel`; the registry every
caller uses is :mod:`dnadiff.diffusion.samplers`.

Ancestral sampling:

From time t to s < t a masked position is revealed with probability
(alpha_s - alpha_t) / (1 - alpha_t) (= (t - s) / t for the log-linear schedule) and then takes
token v with probability p_theta(v | x_t); revealed tokens never change (carry-over). The
categorical draw is an inverse-CDF draw in float64. At the last step every position still
masked is revealed, so the output holds generable ids only.
"""

from __future__ import annotations

import torch


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
    single label applies to every row)."""
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


@torch.no_grad()
def ancestral_sample(mdlm, model, x_init: torch.Tensor, steps: int, generator=None,
                     t_min: float = 1e-5, cond=None, cache: bool = True,
                     temperature: float = 1.0, top_p: float = 1.0, **_ignored
                     ) -> tuple[torch.Tensor, dict]:
    """Denoise ``x_init`` (mask ids where tokens are to be generated) in ``steps`` steps.

    Positions of ``x_init`` that are not ``mdlm.mask_id`` are kept (prefix/infill conditioning).
    With ``cache`` and no time conditioning the denoiser output depends on x_t alone, so a row
    that revealed nothing in a step keeps its previous output and only the rows that changed go
    through the network (gathered, evaluated, scattered back); the random draws are the same
    either way, so cached and uncached runs give identical sequences. Rows with nothing left to
    reveal are not evaluated. Returns the final tokens and ``{"forward_passes": n,
    "row_evaluations": rows}``.
    """
    x = x_init.clone()
    sched = mdlm.schedule
    ts = torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)
    use_cache = cache and not mdlm.time_conditioning
    net = RowEvaluator(mdlm, model, cond)
    stale = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for i in range(steps):
        masked = x == mdlm.mask_id
        active = masked.any(1)
        if not active.any():
            break
        logp = net(x, float(ts[i]), active & stale if use_cache else active)
        alpha_t, alpha_s = sched.alpha(ts[i]), sched.alpha(ts[i + 1])
        last = i == steps - 1
        p_reveal = 1.0 if last else float((alpha_s - alpha_t) / (1.0 - alpha_t))
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.device)
        reveal = masked & (u < p_reveal)
        stale = reveal.any(1)
        if stale.any():
            probs = sampling_probs(logp[reveal], temperature, top_p)
            x[reveal] = categorical_float64(probs, generator)
    return x, net.info()


@torch.no_grad()
def autoregressive_sample(ar, model, x_init: torch.Tensor, generator=None, cond=None,
                          temperature: float = 1.0, top_p: float = 1.0, cache: bool = True,
                          **_ignored) -> tuple[torch.Tensor, dict]:
    """Left-to-right sampling for the AR objective: fills the ``ar.mask_id`` positions of
    ``x_init`` one position at a time (given positions are kept and used as context).

    With ``cache`` and a backbone that decodes incrementally (``model.decoder()``: the causal
    DiT keeps the keys and values of the positions it has seen), each pass runs the network on
    one new position only: O(L) instead of O(L^2), the same sequences either way; every
    position up to the last one to generate then takes a (one-position) pass."""
    x = x_init.clone()
    n_forward = 0
    todo_cols = (x == ar.mask_id).any(0).nonzero()
    if not todo_cols.numel():
        return x, {"forward_passes": 0, "row_evaluations": 0}
    incremental = cache and getattr(model, "causal", False) and hasattr(model, "decoder")
    decoder = model.decoder(x.shape[0], cond) if incremental else None
    bos = torch.full_like(x[:, :1], ar.bos_id)
    for i in range(int(todo_cols.max()) + 1):
        todo = x[:, i] == ar.mask_id
        if decoder is not None:  # feed the token before position i, get position i's logits
            logp = ar.logp_from_logits(decoder.step(bos if i == 0 else x[:, i - 1:i]))
        elif todo.any():
            logp = ar.log_probs(model, ar.shift_right(x[:, : i + 1]), cond)[:, i]
        else:
            continue
        n_forward += 1
        if todo.any():
            x[todo, i] = categorical_float64(sampling_probs(logp[todo], temperature, top_p),
                                             generator)
    return x, {"forward_passes": n_forward, "row_evaluations": n_forward * x.shape[0]}


def semi_autoregressive(sample_block, x_init: torch.Tensor, window: int, stride: int
                        ) -> tuple[torch.Tensor, dict]:
    """Generate a sequence longer than the model's context in overlapping blocks.

    The first block is ``x_init[:, :window]``; each later block covers the next ``stride`` new
    positions plus the ``window - stride`` positions before them, which are already generated
    and so are kept fixed (carry-over) as context. ``sample_block(block) -> (block, info)``
    fills the mask positions of one block. The output has exactly ``x_init``'s length.
    """
    if not 0 < stride < window:
        raise ValueError(f"stride ({stride}) must be in (0, window={window})")
    x = x_init.clone()
    total = x.shape[1]
    x[:, : min(window, total)], info = sample_block(x[:, : min(window, total)])
    totals = dict(info)
    pos = min(window, total)
    while pos < total:
        new = min(stride, total - pos)
        start = pos + new - window
        x[:, start: pos + new], info = sample_block(x[:, start: pos + new])
        for key, value in info.items():
            totals[key] = totals.get(key, 0) + value
        pos += new
    return x, totals
