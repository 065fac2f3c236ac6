"""The MDLM objective (Sahoo et al. 2024): SUBS parameterization and the Rao-Blackwellized
continuous-time NELBO.

- Forward process: each token whose ``loss_mask`` is set becomes ``mask_id`` with probability
  ``1 - alpha_t``; positions outside ``loss_mask`` (padding, N) are never masked and never scored.
- SUBS: the denoiser's logits get -inf on ``mask_id`` and on every id outside ``generable_ids``
  (zero-masking), and unmasked positions carry their token over (they contribute zero loss).
- NELBO per token = sum over masked positions of weight(t) * -log p(x0 | x_t), divided by the
  number of scored tokens (masked or not), with max(count, 1) so an all-padding batch gives 0.
- Time sampling is stratified: u_i ~ U[i/n, (i+1)/n), t = (1 - eps) u + eps. Training may draw
  t = (1 - eps) u^p + eps instead (``train_time_power`` p > 1: more windows at low masking
  rates, where the denoiser sees most context) with the importance weight p u^(p-1), so the
  training loss is the same NELBO in expectation (only its variance changes).
"""

from __future__ import annotations

import torch


def allowed_outputs(vocab_size: int, generable_ids, never: int) -> torch.Tensor:
    """Which ids an objective's predictions may take (a bool per id): the generable ones, never
    ``never`` (the mask id, which is also the AR start symbol)."""
    allowed = torch.zeros(vocab_size, dtype=torch.bool)
    allowed[list(generable_ids)] = True
    allowed[never] = False
    return allowed


class MDLM:
    """Masked diffusion objective. ``stochastic``: its NELBO is a Monte Carlo estimate over t."""

    name = "mdlm"
    causal = False
    stochastic = True

    def __init__(self, schedule, mask_id: int, generable_ids, vocab_size: int,
                 time_conditioning: bool = False, train_discrete_T: int | None = None,
                 train_time_power: float = 1.0):
        if train_time_power < 1.0:
            raise ValueError(f"train_time_power must be >= 1 (got {train_time_power})")
        if train_time_power != 1.0 and train_discrete_T:
            raise ValueError("train_time_power applies to the continuous-time objective only "
                             "(unset train_discrete_T or set train_time_power to 1)")
        self.train_time_power = float(train_time_power)
        self.schedule = schedule
        self.train_discrete_T = train_discrete_T  # None: the continuous-time objective
        self.mask_id = mask_id
        self.vocab_size = vocab_size
        self.time_conditioning = time_conditioning
        self.allowed = allowed_outputs(vocab_size, generable_ids, mask_id)

    # -- noise ---------------------------------------------------------------------------
    def sample_t(self, n: int, generator=None, device=None, discrete_T: int | None = None
                 ) -> torch.Tensor:
        """Stratified times: one draw in each of n equal strata of [0, 1), mapped to [eps, 1);
        with ``discrete_T``, mapped to the grid {1/T, 2/T, ..., 1} instead."""
        return self.time_from_uniform(self.stratified_uniform(n, generator), discrete_T).to(device)

    @staticmethod
    def stratified_uniform(n: int, generator=None) -> torch.Tensor:
        """One float64 draw in each of n equal strata of [0, 1)."""
        return (torch.arange(n, dtype=torch.float64)
                + torch.rand(n, generator=generator, dtype=torch.float64)) / n

    def time_from_uniform(self, u: torch.Tensor, discrete_T: int | None = None) -> torch.Tensor:
        if discrete_T:
            return ((torch.floor(u * discrete_T) + 1.0) / discrete_T).float()
        eps = self.schedule.eps
        return ((1.0 - eps) * u + eps).float()

    def corrupt(self, x0, t, loss_mask, generator=None):
        """x_t: mask each scored token with probability 1 - alpha_t. Returns (x_t, masked)."""
        p_mask = 1.0 - self.schedule.alpha(t)[:, None]
        u = torch.rand(x0.shape, generator=generator, dtype=torch.float32).to(x0.device)
        masked = (u < p_mask) & loss_mask
        return torch.where(masked, torch.full_like(x0, self.mask_id), x0), masked

    # -- denoiser ------------------------------------------------------------------------
    def log_probs(self, model, x_t, t, cond=None) -> torch.Tensor:
        """SUBS log-probabilities (float32): zero mass on mask and non-generable ids."""
        sigma = self.schedule.sigma(t) if self.time_conditioning else None
        logits = model(x_t, sigma=sigma, cond=cond).float()
        allowed = self.allowed.to(logits.device)
        logits = logits.masked_fill(~allowed, float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    # -- loss ----------------------------------------------------------------------------
    def token_nll(self, model, x0, loss_mask, t=None, generator=None, cond=None,
                  discrete_T: int | None = None, time_power: float = 1.0):
        """Per-window weighted NLL sums and scored-token counts.

        Returns ``(nll_sum[B], n_tokens[B], t[B])`` where ``nll_sum`` is
        sum over masked positions of weight(t) * -log p(x0 | x_t) (nats). With ``discrete_T``
        the times lie on the grid i/T and the weights are those of the T-step NELBO. With
        ``time_power`` p > 1 (and no ``t`` given) the times are t = (1 - eps) u^p + eps for
        stratified u and each window's sum carries the importance weight p u^(p-1): the same
        expectation as uniform times.
        """
        ratio = None
        if t is None and time_power != 1.0:
            u = self.stratified_uniform(x0.shape[0], generator)
            t = self.time_from_uniform(u ** time_power).to(x0.device)
            ratio = (time_power * u ** (time_power - 1.0)).float().to(x0.device)
        elif t is None:
            t = self.sample_t(x0.shape[0], generator=generator, device=x0.device,
                              discrete_T=discrete_T)
        x_t, masked = self.corrupt(x0, t, loss_mask, generator=generator)
        logp = self.log_probs(model, x_t, t, cond)
        # carry-over: only masked positions are scored; gather the true token's log-prob there
        target = torch.where(masked, x0, torch.zeros_like(x0))
        nll = -logp.gather(-1, target[..., None]).squeeze(-1)
        nll = torch.where(masked, nll, torch.zeros_like(nll))
        weight = (self.schedule.discrete_weight(t, discrete_T) if discrete_T
                  else self.schedule.weight(t))
        nll_sum = nll.sum(-1) * weight
        if ratio is not None:
            nll_sum = nll_sum * ratio
        return nll_sum, loss_mask.sum(-1), t

    def loss(self, model, x0, loss_mask, generator=None, cond=None):
        """Batch NELBO in nats per scored token (never NaN: divides by max(count, 1)); the
        T-step objective when the objective was built with ``train_discrete_T``; times drawn
        with ``train_time_power`` (importance-weighted, the same NELBO in expectation)."""
        nll_sum, n_tok, _ = self.token_nll(model, x0, loss_mask, generator=generator, cond=cond,
                                           discrete_T=self.train_discrete_T,
                                           time_power=self.train_time_power)
        return nll_sum.sum() / n_tok.sum().clamp_min(1)
