"""The loss by masking rate: where a masked model's loss is made.

At each masking rate r of ``evaluate.masking_rates`` every evaluated window (the tiled split,
as the likelihood) gets one mask draw at the diffusion time t where 1 - alpha(t) = r (every
scorable token masked with probability r; the generator seeded by ``evaluate.seed`` and the
rate's place in the list), and the bits per masked token -log2 p(x0 | x_t), averaged over the
masked positions, are reported with a ratio-estimator standard error over windows. At low r the
model sees nearly all context; at high r next to none (where nothing beats order 0).

The masked Markov references (``evaluate.masked_markov_orders``) are scored under the very same
masks (paired: ``bits_vs_model`` is reference - model, with its standard error). An AR
checkpoint has no masking rate: its row is its exact bits per token on the same windows (its
masked references are scored under the MDLM its config describes). Order 0 is the unigram
entropy of the training split.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint
from dnadiff.errors import DnadiffError
from dnadiff.evaluation.composition import entropy_bits
from dnadiff.evaluation.discreteness import time_for_masked_fraction
from dnadiff.evaluation.likelihood import (
    heldout_nelbo,
    load_for_scoring,
    masked_objective,
    ratio_se,
)
from dnadiff.evaluation.masked_markov import fit_masked_markov

LN2 = math.log(2.0)


def rate_seed(seed: int, place: int) -> int:
    """The mask generator's seed of the rate at ``place`` in the list."""
    return int(np.random.SeedSequence([seed, place]).generate_state(1)[0])


@torch.no_grad()
def loss_at_rate(model, objective, dataset, rate: float, seed: int, batch_size: int,
                 device="cpu") -> dict:
    """Per-window arrays at masking rate ``rate``: ``nats`` (summed -log p over the masked
    positions), ``masked`` and ``scorable`` token counts, and the time ``t``. The masks depend
    only on ``seed``, ``batch_size``, ``rate`` and the windows (any two models: the same)."""
    t = time_for_masked_fraction(objective.schedule, rate)
    gen = torch.Generator().manual_seed(seed)
    n = len(dataset)
    out = {k: np.zeros(n) for k in ("nats", "masked", "scorable")}
    for start in range(0, n, batch_size):
        idx = list(range(start, min(start + batch_size, n)))
        items = [dataset[i] for i in idx]
        x = torch.stack([it["tokens"] for it in items]).to(device)
        lm = torch.stack([it["loss_mask"] for it in items]).to(device)
        tt = torch.full((len(idx),), t, device=device)
        x_t, masked = objective.corrupt(x, tt, lm, generator=gen)
        logp = objective.denoise(model, x_t, x, tt)
        nll = -logp.gather(-1, x[..., None]).squeeze(-1)
        nll = torch.where(masked, nll, torch.zeros_like(nll))
        out["nats"][idx] = nll.double().sum(-1).cpu().numpy()
        out["masked"][idx] = masked.sum(-1).cpu().numpy()
        out["scorable"][idx] = lm.sum(-1).cpu().numpy()
    out["t"] = t
    return out


def _row(name: str, rate: float, r: dict, paired: dict | None = None) -> dict:
    row = {"model": name, "masking_rate": rate, "t": r["t"],
           "masked_fraction": r["masked"].sum() / max(r["scorable"].sum(), 1),
           "bits_per_masked_token": r["nats"].sum() / max(r["masked"].sum(), 1) / LN2,
           "bits_se": ratio_se(r["nats"], r["masked"]) / LN2,
           "masked_tokens": int(r["masked"].sum())}
    if paired is not None:
        diff = r["nats"] - paired["nats"]
        row["bits_vs_model"] = diff.sum() / max(r["masked"].sum(), 1) / LN2
        row["bits_vs_model_se"] = ratio_se(diff, r["masked"]) / LN2
    return row


def masking_rate_rows(model, objective, references: dict, dataset, eval_cfg: dict,
                      device="cpu") -> list[dict]:
    """Rows (model, rate) for ``model`` (``None``: references only) and each reference
    (``{name: denoiser}``), all under the same masks at every rate of
    ``evaluate.masking_rates``."""
    rows = []
    for place, rate in enumerate(eval_cfg["masking_rates"]):
        args = (dataset, rate, rate_seed(eval_cfg["seed"], place), eval_cfg["batch_size"])
        base = None
        if model is not None:
            base = loss_at_rate(model, objective, *args, device=device)
            rows.append(_row(objective.name, rate, base))
        for name, ref in references.items():
            rows.append(_row(name, rate, loss_at_rate(ref, objective, *args), base))
    return rows


def run_masking_rate(checkpoint, data_dir, eval_cfg: dict, split: str = "test",
                     ar_checkpoint=None) -> dict:
    """The loss by masking rate of ``checkpoint`` (MDLM: one row per rate; AR: its exact bits
    per token) beside the masked Markov references, order 0 and, given ``ar_checkpoint``, that
    AR model's bits per token on the same windows."""
    ckpt, model, objective, tok, device, genome, ds = load_for_scoring(checkpoint, data_dir,
                                                                        eval_cfg, split)
    train = genome.split_arrays("train")
    refs = {f"masked_markov{k}": fit_masked_markov(train, k, tok,
                                                    eval_cfg["masked_markov_min_count"])
            for k in sorted(set(eval_cfg["masked_markov_orders"]))}
    masked = objective if objective.stochastic else masked_objective(ckpt["config"], tok)
    rows = masking_rate_rows(model if objective.stochastic else None, masked, refs, ds,
                             eval_cfg, device)
    ars = [(checkpoint, model, objective)] if not objective.stochastic else []
    if ar_checkpoint is not None:
        ar_model, ar_objective, ar_tok = model_from_checkpoint(load_checkpoint(ar_checkpoint))
        if ar_objective.stochastic or list(ar_tok.tokens) != list(tok.tokens):
            raise DnadiffError(f"{ar_checkpoint}: expected an AR checkpoint with the "
                               f"tokenizer of {checkpoint}")
        ars.append((ar_checkpoint, ar_model.to(device), ar_objective))
    for _path, ar_model, ar_objective in ars:
        r = heldout_nelbo(ar_model, ar_objective, ds, eval_cfg["batch_size"], device=device)
        rows.append({"model": "ar", "bits_per_masked_token": r["bits_per_token"],
                     "bits_se": r["bits_per_token_se"], "masked_tokens": r["tokens_scored"]})
    gen = tok.generable_ids
    order0 = entropy_bits(genome.token_counts("train")[gen])
    rows.append({"model": "order0", "bits_per_masked_token": order0})
    return {"checkpoint": str(checkpoint), "checkpoint_step": ckpt["step"],
            "objective": objective.name, "ar_checkpoint": ar_checkpoint and str(ar_checkpoint),
            "split": split, "windows": len(ds), "modality": genome.modality,
            "masked_markov": [m.describe() for m in refs.values()],
            "order0_train_entropy_bits": order0, "rows": rows}
