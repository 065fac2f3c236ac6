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
- Block diffusion (BD3-LM, Arriola et al. 2025; ``block_size``): the window is cut into blocks
  and log p(x) = sum_b log p(x^b | x^<b), each factor an MDLM over the block with the earlier
  blocks clean. The NELBO is the sum over blocks of the SUBS NELBO restricted to the block, each
  block with its own time t_b (training: stratified over all blocks of the batch); the
  denoiser sees noisy and clean copies in one pass (``Backbone.block_logits``). One block (the
  whole window) is MDLM; blocks of one position at t = 1 are the AR NLL.
- Complementary masks (``train_complementary``, training only): the batch's first half of
  windows is scored twice, once under a mask drawn at time t and once under its complement at
  the time t' with masking rate 1 - (1 - alpha_t), alpha_t' = 1 - alpha_t (for the loglinear
  schedule t' = 1/(1 - eps) - t, which is uniform when t is: each half alone is the NELBO's
  estimate, so their mean is too). Every scored position of a window is masked in exactly one
  of its two copies: negatively correlated masks, a lower-variance gradient for the same
  compute, seeing half as many windows.
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
                 train_time_power: float = 1.0, block_size: int | None = None,
                 window: int | None = None, train_mask_range=None,
                 train_complementary: bool = False):
        if train_time_power < 1.0:
            raise ValueError(f"train_time_power must be >= 1 (got {train_time_power})")
        if train_time_power != 1.0 and train_discrete_T:
            raise ValueError("train_time_power applies to the continuous-time objective only "
                             "(unset train_discrete_T or set train_time_power to 1)")
        self.train_time_power = float(train_time_power)
        if train_mask_range is not None:
            low, high = (float(r) for r in train_mask_range)
            if not 0.0 <= low < high <= 1.0:
                raise ValueError(f"train_mask_range must be [low, high] with 0 <= low < high <= 1 "
                                 f"(got {list(train_mask_range)})")
            if train_discrete_T:
                raise ValueError("train_mask_range applies to the continuous-time objective only")
            train_mask_range = (low, high)
        self.train_mask_range = train_mask_range  # None: masking rates over all of [0, 1]
        if train_complementary and (train_mask_range is not None or train_discrete_T
                                    or schedule.name != "loglinear"):
            raise ValueError("complementary masks need the loglinear schedule, continuous "
                             "times and the full range of masking rates")
        self.train_complementary = bool(train_complementary)
        if block_size is not None and block_size < 1:
            raise ValueError(f"block_size must be >= 1 (got {block_size})")
        if block_size is not None and time_conditioning:
            raise ValueError("block diffusion draws a time per block: it cannot be combined "
                             "with time conditioning (one time per window)")
        self.block_size = block_size  # None: the whole window is one block (MDLM)
        self.window = window  # the trained window: what a block's context may span
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

    def time_from_uniform(self, u: torch.Tensor, discrete_T: int | None = None,
                          mask_range=None) -> torch.Tensor:
        """Times from uniform draws ``u`` in [0, 1): on [eps, 1), on the T-step grid with
        ``discrete_T``, or on the times whose masking rates 1 - alpha_t lie in
        ``mask_range`` = (low, high) (clipped to [eps, 1])."""
        if discrete_T:
            return ((torch.floor(u * discrete_T) + 1.0) / discrete_T).float()
        eps = self.schedule.eps
        if mask_range is None:
            return ((1.0 - eps) * u + eps).float()
        low, high = (float(self.schedule.time_of(torch.tensor(1.0 - rate, dtype=torch.float64)))
                     for rate in mask_range)
        low, high = max(low, eps), min(high, 1.0)
        return (low + (high - low) * u).float()

    def blocks(self, length: int) -> int:
        """How many blocks a window of ``length`` has (1 without block diffusion)."""
        return 1 if self.block_size is None else -(-length // self.block_size)

    def per_position(self, t: torch.Tensor, length: int) -> torch.Tensor:
        """Times [B] (one per window) or [B, blocks] (one per block) as [B, length]."""
        if t.ndim == 1:
            return t[:, None].expand(-1, length)
        idx = torch.arange(length, device=t.device) // (self.block_size or length)
        return t[:, idx]

    def corrupt(self, x0, t, loss_mask, generator=None, complementary: bool = False):
        """x_t: mask each scored token with probability 1 - alpha_t (``t``: one time per
        window [B], or per block [B, blocks]). Returns (x_t, masked). ``complementary``: the
        second half of the rows is the first half's windows masked exactly where the first
        half is not (their times must be the complementary ones)."""
        if complementary:
            half = x0.shape[0] // 2
            _, first = self.corrupt(x0[:half], t[:half], loss_mask[:half], generator)
            masked = torch.cat([first, ~first & loss_mask[half:]])
        else:
            p_mask = 1.0 - self.schedule.alpha(self.per_position(t, x0.shape[1]))
            u = torch.rand(x0.shape, generator=generator, dtype=torch.float32).to(x0.device)
            masked = (u < p_mask) & loss_mask
        return torch.where(masked, torch.full_like(x0, self.mask_id), x0), masked

    def complementary_time(self, t: torch.Tensor) -> torch.Tensor:
        """The time t' whose masking rate is t's unmasked rate: alpha_t' = 1 - alpha_t (at
        most 1)."""
        return self.schedule.time_of(1.0 - self.schedule.alpha(t)).clamp(max=1.0)

    # -- denoiser ------------------------------------------------------------------------
    def log_probs(self, model, x_t, t, cond=None) -> torch.Tensor:
        """SUBS log-probabilities (float32): zero mass on mask and non-generable ids."""
        sigma = self.schedule.sigma(t) if self.time_conditioning else None
        return self.subs(model(x_t, sigma=sigma, cond=cond))

    def denoise(self, model, x_t, x0, t, cond=None) -> torch.Tensor:
        """SUBS log-probabilities at every position of ``x_t``, the corruption of ``x0`` at
        times ``t`` (what the NELBO scores): one pass; with block diffusion the earlier blocks
        are ``x0``'s, clean."""
        if self.block_size is None:
            return self.log_probs(model, x_t, t, cond)
        return self.subs(model.block_logits(x_t, x0, self.block_size, cond=cond))

    def one_pass_log_probs(self, model, x_t, t, cond=None) -> torch.Tensor:
        """Log-probabilities of what one forward pass predicts at the masked positions of
        ``x_t``: every position for MDLM. With block diffusion the blocks before the first
        block holding a mask (in any row) are the clean context and that block is denoised
        against them; every other position is NaN (a later block needs this one generated)."""
        if self.block_size is None:
            return self.log_probs(model, x_t, t, cond)
        size = self.block_size
        masked = (x_t == self.mask_id).any(0).nonzero()
        first = int(masked[0]) // size * size if len(masked) else 0
        keep = None if self.window is None else max(self.window - size, 0)
        context = model.block_context(x_t.shape[0], cond, keep)
        for start in range(0, first, size):
            context.append(x_t[:, start: start + size])
        block = self.log_probs(model, x_t[:, first: first + size], t, cond=context)
        out = block.new_full(x_t.shape + block.shape[-1:], float("nan"))
        out[:, first: first + size] = block
        return out

    def subs(self, logits: torch.Tensor) -> torch.Tensor:
        """SUBS log-probabilities (float32) from a denoiser's logits."""
        logits = logits.float()
        allowed = self.allowed.to(logits.device)
        logits = logits.masked_fill(~allowed, float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    # -- loss ----------------------------------------------------------------------------
    def token_nll(self, model, x0, loss_mask, t=None, generator=None, cond=None,
                  discrete_T: int | None = None, time_power: float = 1.0, mask_range=None,
                  complementary: bool = False):
        """Per-window weighted NLL sums and scored-token counts.

        Returns ``(nll_sum[B], n_tokens[B], t)`` where ``nll_sum`` is
        sum over masked positions of weight(t) * -log p(x0 | x_t) (nats) and ``t`` the times:
        [B], or [B, blocks] with block diffusion when not given (a given ``t`` [B] applies to
        every block of its window: each block's time is still uniform, so the sum is unbiased).
        With ``discrete_T`` the times lie on the grid i/T and the weights are those of the
        T-step NELBO. With ``time_power`` p > 1 (and no ``t`` given) the times are
        t = (1 - eps) u^p + eps for stratified u and each window's (or block's) term carries
        the importance weight p u^(p-1): the same expectation as uniform times. With
        ``mask_range`` (low, high) the times are those whose masking rates lie in [low, high]
        (training with clipped rates: no longer the NELBO). With ``complementary`` (and no
        ``t`` given; an even batch whose second half repeats the first) the second half is
        masked where the first is not, at the complementary times (module docstring).
        """
        ratio = None
        B, L = x0.shape
        nb = self.blocks(L) if self.block_size is not None else 1
        if complementary and (t is not None or B % 2):
            raise ValueError("complementary masks draw their own times, for an even batch "
                             f"(got {B} rows{' and given times' if t is not None else ''})")
        if t is None:
            # one stratified draw per block of the batch (per window without block diffusion),
            # the strata spread over windows at random; with complementary masks, for the
            # first half of the windows (the second half takes the complementary times)
            rows = B // 2 if complementary else B
            u = self.stratified_uniform(rows * nb, generator)
            if nb > 1:
                u = u[torch.randperm(rows * nb, generator=generator)]
            if time_power != 1.0:
                ratio = (time_power * u ** (time_power - 1.0)).float().to(x0.device)
                u = u ** time_power
            t = self.time_from_uniform(u, discrete_T, mask_range).to(x0.device)
            if self.block_size is not None:
                t, ratio = t.view(rows, nb), None if ratio is None else ratio.view(rows, nb)
            if complementary:  # t' = 1/(1 - eps) - t: the same density, so the same ratio
                t = torch.cat([t, self.complementary_time(t)])
                ratio = None if ratio is None else torch.cat([ratio, ratio])
        x_t, masked = self.corrupt(x0, t, loss_mask, generator=generator,
                                   complementary=complementary)
        logp = self.denoise(model, x_t, x0, t, cond)
        # carry-over: only masked positions are scored; gather the true token's log-prob there
        target = torch.where(masked, x0, torch.zeros_like(x0))
        nll = -logp.gather(-1, target[..., None]).squeeze(-1)
        nll = torch.where(masked, nll, torch.zeros_like(nll))
        weight = (self.schedule.discrete_weight(t, discrete_T) if discrete_T
                  else self.schedule.weight(t))
        if ratio is not None:
            weight = weight * ratio
        if t.ndim == 1:  # one time per window
            nll_sum = nll.sum(-1) * weight
        else:  # one per block
            nll_sum = (nll * self.per_position(weight, L)).sum(-1)
        return nll_sum, loss_mask.sum(-1), t

    def loss(self, model, x0, loss_mask, generator=None, cond=None):
        """Batch NELBO in nats per scored token (never NaN: divides by max(count, 1)); the
        T-step objective when the objective was built with ``train_discrete_T``; times drawn
        with ``train_time_power`` (importance-weighted, the same NELBO in expectation) and
        masking rates in ``train_mask_range`` (the clipped objective, not the NELBO); with
        ``train_complementary``, the first half of the batch's windows (at least one), each
        under a mask and its complement."""
        complementary = self.train_complementary and x0.shape[0] >= 2
        if complementary:
            rows = torch.arange(x0.shape[0] // 2, device=x0.device).repeat(2)
            x0, loss_mask = x0[rows], loss_mask[rows]
            cond = cond[rows] if torch.is_tensor(cond) and cond.ndim else cond
        nll_sum, n_tok, _ = self.token_nll(model, x0, loss_mask, generator=generator, cond=cond,
                                           discrete_T=self.train_discrete_T,
                                           time_power=self.train_time_power,
                                           mask_range=self.train_mask_range,
                                           complementary=complementary)
        return nll_sum.sum() / n_tok.sum().clamp_min(1)
