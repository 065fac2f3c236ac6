"""Held-out likelihood: the MDLM NELBO on tiled test windows, in bits per token.

Diffusion times are stratified across the whole test set (window i of draw d gets its own
stratum of [0, 1)), so the estimate has low variance; the standard error is the ratio-estimator
(delta-method) error over windows. N and padding are never scored.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint
from dnadiff.data.windows import PreparedGenome, TiledWindows

LN2 = math.log(2.0)


def entropy_bits(counts) -> float:
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum())


def cross_entropy_bits(counts_q, counts_p) -> float:
    """Bits per symbol of coding data with composition ``counts_q`` using model ``counts_p``."""
    q = np.asarray(counts_q, np.float64) / np.sum(counts_q)
    p = np.asarray(counts_p, np.float64) / np.sum(counts_p)
    return float(-(q * np.log2(p)).sum())


@torch.no_grad()
def heldout_nelbo(model, mdlm, dataset, batch_size: int, t_draws: int = 1, seed: int = 0,
                  device="cpu") -> dict:
    n_win = len(dataset)
    total = n_win * t_draws
    rng = np.random.default_rng(seed)
    strata = rng.permutation(total)
    u = (strata + rng.random(total)) / total
    eps = mdlm.schedule.eps
    t_all = torch.tensor((1.0 - eps) * u + eps, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    nll_w = np.zeros(total)
    tok_w = np.zeros(total)
    for start in range(0, total, batch_size):
        idx = list(range(start, min(start + batch_size, total)))
        items = [dataset[i % n_win] for i in idx]
        x = torch.stack([it["tokens"] for it in items]).to(device)
        lm = torch.stack([it["loss_mask"] for it in items]).to(device)
        nll, n, _ = mdlm.token_nll(model, x, lm, t=t_all[idx].to(device), generator=gen)
        nll_w[idx] = nll.double().cpu().numpy()
        tok_w[idx] = n.double().cpu().numpy()
    ratio = nll_w.sum() / max(tok_w.sum(), 1)
    resid = nll_w - ratio * tok_w
    se = math.sqrt(total / max(total - 1, 1) * (resid ** 2).sum()) / max(tok_w.sum(), 1)
    return {"nats_per_token": ratio, "bits_per_token": ratio / LN2,
            "bits_per_token_se": se / LN2, "perplexity": math.exp(ratio),
            "windows": n_win, "t_draws": t_draws, "tokens_scored": int(tok_w.sum() / t_draws)}


def evaluate_likelihood(checkpoint, data_dir, eval_cfg: dict, split: str = "test") -> dict:
    ckpt = load_checkpoint(checkpoint)
    model, mdlm, tok = model_from_checkpoint(ckpt)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    genome = PreparedGenome(data_dir)
    window = ckpt["config"]["data"]["window"]
    ds = TiledWindows(genome, split, window, max_windows=eval_cfg["max_windows"])
    res = heldout_nelbo(model, mdlm, ds, eval_cfg["batch_size"], eval_cfg["t_draws"],
                        eval_cfg["seed"], device)
    comp = genome.composition(split)
    train_comp = genome.composition("train")
    bases = [b for b in comp if b != "N"]
    res.update({
        "split": split, "checkpoint_step": ckpt["step"],
        "order0_entropy_bits": entropy_bits([comp[b] for b in bases]),
        "train_composition_cross_entropy_bits": cross_entropy_bits(
            [comp[b] for b in bases], [train_comp[b] for b in bases]),
        "uniform_bits": math.log2(len(bases)),
    })
    return res
