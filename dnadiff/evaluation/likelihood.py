"""Held-out likelihood: the MDLM NELBO on tiled test windows, in bits per token.

Diffusion times are stratified across the whole test set (window i of draw d gets its own
stratum of [0, 1)), so the estimate has low variance; the standard error is the ratio-estimator
(delta-method) error over windows. N and padding are never scored.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dnadiff import runtime
from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint
from dnadiff.config import validate_config
from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import TiledWindows
from dnadiff.diffusion import build_objective
from dnadiff.errors import DnadiffError
from dnadiff.evaluation.baselines import markov_heldout_bits
from dnadiff.evaluation.composition import entropy_bits
from dnadiff.evaluation.masked_markov import fit_masked_markov, order_problem

LN2 = math.log(2.0)


def split_entropy_bits(data_dir, split: str = "validation") -> float | None:
    """Order-0 entropy of the generable tokens of a prepared split (a training curve's
    reference line); ``None`` when the split is empty."""
    data = PreparedData(data_dir)
    counts = data.token_counts(split)[data.tokenizer.generable_ids]
    return entropy_bits(counts) if counts.sum() else None


def cross_entropy_bits(counts_q, counts_p) -> float:
    """Bits per symbol of coding data with composition ``counts_q`` using model ``counts_p``."""
    q = np.asarray(counts_q, np.float64) / np.sum(counts_q)
    p = np.asarray(counts_p, np.float64) / np.sum(counts_p)
    return float(-(q * np.log2(p)).sum())


def ratio_se(a, b) -> float:
    """Standard error of sum(a) / sum(b) over windows (the ratio / delta-method estimator)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = len(a)
    resid = a - a.sum() / max(b.sum(), 1) * b
    return math.sqrt(n / max(n - 1, 1) * (resid ** 2).sum()) / max(b.sum(), 1)


@torch.no_grad()
def heldout_nelbo(model, objective, dataset, batch_size: int, t_draws: int = 1, seed: int = 0,
                  device="cpu", discrete_T: int | None = None, keep_windows: bool = False,
                  keep_draws: bool = False) -> dict:
    """Bits per token over ``dataset`` with a standard error.

    MDLM: the NELBO with ``t_draws`` stratified times per window (continuous time, or the
    T-step grid with ``discrete_T``). AR: the exact NLL (one pass; ``t_draws`` is ignored).
    The times and masks depend only on ``seed``, ``t_draws``, ``batch_size`` and the windows:
    any two models scored with the same ones see the same masks (a paired comparison).
    ``keep_windows``: also return the per-window totals (nats and tokens, summed over draws)
    as ``_window_nats`` and ``_window_tokens``. ``keep_draws``: also return the nats of every
    draw of every window, ``_draw_nats`` [draws, windows] (per-sequence scores: their spread
    over draws is a sequence's standard error), and the windows' tokens, ``_window_tokens``.
    """
    n_win = len(dataset)
    draws = t_draws if objective.stochastic else 1
    total = n_win * draws
    rng = np.random.default_rng(seed)
    t_all = None
    if objective.stochastic:
        strata = rng.permutation(total)
        u = torch.from_numpy((strata + rng.random(total)) / total)
        t_all = objective.time_from_uniform(u, discrete_T)
    gen = torch.Generator().manual_seed(seed)
    nll_w = np.zeros(total)
    tok_w = np.zeros(total)
    t0, report_every = time.time(), max(1, total // batch_size // 10)
    for b, start in enumerate(range(0, total, batch_size)):
        if b and b % report_every == 0:
            print(f"likelihood: {start}/{total} windows ({time.time() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
        idx = list(range(start, min(start + batch_size, total)))
        items = [dataset[i % n_win] for i in idx]
        x = torch.stack([it["tokens"] for it in items]).to(device)
        lm = torch.stack([it["loss_mask"] for it in items]).to(device)
        t = t_all[idx].to(device) if t_all is not None else None
        nll, n, _ = objective.token_nll(model, x, lm, t=t, generator=gen, discrete_T=discrete_T)
        nll_w[idx] = nll.double().cpu().numpy()
        tok_w[idx] = n.double().cpu().numpy()
    ratio = nll_w.sum() / max(tok_w.sum(), 1)
    # per-window totals (summed over draws) for the ratio estimator's standard error
    a = nll_w.reshape(draws, n_win).sum(0)
    b = tok_w.reshape(draws, n_win).sum(0)
    se = ratio_se(a, b)
    kept = {"_window_nats": a, "_window_tokens": b} if keep_windows else {}
    if keep_draws:
        kept.update(_draw_nats=nll_w.reshape(draws, n_win), _window_tokens=b)
    return {**kept, "nats_per_token": ratio, "bits_per_token": ratio / LN2,
            "bits_per_token_se": se / LN2, "perplexity": math.exp(ratio),
            "windows": n_win, "t_draws": draws, "tokens_scored": int(b.sum() / draws),
            "estimate": ("exact NLL" if not objective.stochastic else
                         f"NELBO, discrete T={discrete_T}" if discrete_T else
                         "NELBO, continuous time")}


def load_model(checkpoint, rc_conjoin=None):
    """(checkpoint, model in eval mode on the device, objective, tokenizer, device) of a
    checkpoint file or export folder, on the device :func:`dnadiff.runtime.device` picks."""
    ckpt = load_checkpoint(checkpoint)
    model, objective, tok = model_from_checkpoint(ckpt, rc_conjoin=rc_conjoin)
    device = runtime.device()
    model.to(device)
    return ckpt, model, objective, tok, device


def load_for_scoring(checkpoint, data_dir, eval_cfg: dict | None = None,
                     split: str | None = None):
    """(checkpoint, model on the device, objective, tokenizer, device, prepared data, the tiled
    windows of its ``split`` at the model's window, or None without a split) of a model scored
    on ``data_dir``, which must have been prepared with the model's tokenizer (``eval_cfg``:
    the evaluate section; without it, no strand averaging and every window)."""
    eval_cfg = eval_cfg or {"rc_conjoin": None, "max_windows": None}
    ckpt, model, objective, tok, device = load_model(checkpoint, eval_cfg["rc_conjoin"])
    genome = PreparedData(data_dir)
    if genome.tokenizer.tokens != tok.tokens:
        raise DnadiffError(f"{data_dir}: prepared with another tokenizer than the one the "
                           f"checkpoint {checkpoint} was trained with; evaluate it on the data "
                           "it was trained on")
    ds = None if split is None else TiledWindows(genome, split, ckpt["config"]["data"]["window"],
                                                 max_windows=eval_cfg["max_windows"])
    return ckpt, model, objective, tok, device, genome, ds


def evaluate_likelihood(checkpoint, data_dir, eval_cfg: dict, split: str = "test") -> dict:
    """Held-out bits per token of ``checkpoint`` on ``split`` (tiled windows), with its
    discrete-T estimates, the order-0 / training-composition reference entropies and, for DNA,
    the held-out bits of k-th order Markov chains (``evaluate.markov_likelihood_orders``)."""
    ckpt, model, objective, tok, device, genome, ds = load_for_scoring(checkpoint, data_dir,
                                                                        eval_cfg, split)
    args = (model, objective, ds, eval_cfg["batch_size"], eval_cfg["t_draws"], eval_cfg["seed"],
            device)
    res = heldout_nelbo(*args, keep_windows=True)
    windows = res.pop("_window_nats"), res.pop("_window_tokens")
    res["objective"] = objective.name
    res["backbone"] = ckpt["config"]["model"]["backbone"]
    res["rc_conjoin"] = model.rc_conjoin is not None
    if objective.stochastic:
        res["discrete"] = [{"T": T, **{k: v for k, v in heldout_nelbo(*args, discrete_T=T).items()
                                       if k in ("bits_per_token", "bits_per_token_se")}}
                           for T in eval_cfg["discrete_T"]]
    gen = tok.generable_ids
    counts = genome.token_counts(split)[gen]
    train_counts = genome.token_counts("train")[gen]
    res.update({
        "split": split, "checkpoint_step": ckpt["step"], "modality": genome.modality,
        "order0_entropy_bits": entropy_bits(counts),
        # +1: a token never seen in training still gets a code
        "train_composition_cross_entropy_bits": cross_entropy_bits(counts, train_counts + 1),
        "uniform_bits": math.log2(len(gen)),
    })
    if genome.modality == "dna" and eval_cfg["markov_likelihood_orders"]:
        res["markov_baselines"] = markov_heldout_bits(
            genome.split_arrays("train"), genome.split_arrays(split),
            sorted(set(eval_cfg["markov_likelihood_orders"])), complement=tok.complement)
        best = min(res["markov_baselines"], key=lambda r: r["bits_per_token"])
        res["best_markov_order"], res["best_markov_bits"] = best["order"], best["bits_per_token"]
    if eval_cfg["masked_markov_orders"]:
        res["masked_markov_baselines"] = masked_markov_nelbo(
            genome, tok, ckpt["config"], objective, ds, eval_cfg,
            windows if objective.stochastic else None)
    chars = genome.index.get("characters", {}).get(split)
    if chars:
        # tokenizer-independent: the whole split's bits over its characters
        per_char = genome.index["split_sizes"][split] / chars
        res["chars_per_token"] = 1.0 / per_char
        res["bits_per_character"] = res["bits_per_token"] * per_char
    return res


def masked_objective(config: dict, tok):
    """The masked diffusion objective a checkpoint's ``config`` describes (for an AR checkpoint:
    the MDLM of the same config), under which masked references are scored."""
    return build_objective(dict(validate_config(config), objective="mdlm"), tok)


def masked_markov_nelbo(genome, tok, config: dict, objective, dataset, eval_cfg: dict,
                        paired=None) -> list[dict]:
    """The masked Markov references (``evaluate.masked_markov_orders``), fitted on the training
    split and scored as a denoiser under the same times and masks as the model (same seed,
    draws, batch size and windows): NELBO bits per token. ``paired``: the model's per-window
    (nats, tokens) of that evaluation, for the paired difference reference - model."""
    masked = objective if objective.stochastic else masked_objective(config, tok)
    train, rows = genome.split_arrays("train"), []
    for k in sorted(set(eval_cfg["masked_markov_orders"])):
        problem = order_problem(k, len(tok.generable_ids))
        if problem:  # e.g. the default +-4 for a text vocabulary: said, and left out
            print(f"likelihood: {problem}; left out", file=sys.stderr, flush=True)
            rows.append({"k": k, "skipped": problem})
            continue
        mm = fit_masked_markov(train, k, tok, eval_cfg["masked_markov_min_count"])
        r = heldout_nelbo(mm, masked, dataset, eval_cfg["batch_size"], eval_cfg["t_draws"],
                          eval_cfg["seed"], keep_windows=True)
        row = {**mm.describe(), "bits_per_token": r["bits_per_token"],
               "bits_per_token_se": r["bits_per_token_se"], "tokens_scored": r["tokens_scored"]}
        if paired is not None:
            diff, n = r["_window_nats"] - paired[0], r["_window_tokens"]
            row["bits_vs_model"] = float(diff.sum() / max(n.sum(), 1) / LN2)
            row["bits_vs_model_se"] = ratio_se(diff, n) / LN2
        rows.append(row)
    return rows


LIKELIHOOD_COLUMNS = ["objective", "estimate", "split", "bits_per_token", "bits_per_token_se",
                      "bits_vs_model", "bits_vs_model_se",
                      "perplexity", "bits_per_character", "order0_entropy_bits",
                      "train_composition_cross_entropy_bits",
                      "windows", "tokens_scored", "t_draws", "checkpoint_step"]


def likelihood_rows(res: dict) -> list[dict]:
    """The table of a likelihood result: one row for the main estimate, one per discrete-T
    estimate, one per masked Markov reference, one per Markov baseline."""
    rows = [{k: v for k, v in res.items()
             if k not in ("markov_baselines", "masked_markov_baselines")}]
    for d in res.get("discrete", []):
        rows.append(dict(res, estimate=f"NELBO, discrete T={d['T']}",
                         bits_per_token=d["bits_per_token"],
                         bits_per_token_se=d["bits_per_token_se"],
                         perplexity=2 ** d["bits_per_token"]))
        if "chars_per_token" in res:
            rows[-1]["bits_per_character"] = d["bits_per_token"] / res["chars_per_token"]
    strands = ", both strands" if res.get("modality") == "dna" else ""
    for m in res.get("masked_markov_baselines", []):
        if "skipped" in m:
            continue
        rows.append({"objective": f"masked_markov{m['k']}",
                     "estimate": f"masked Markov +-{m['k']} (train split{strands}, add-0.5, "
                                 f"backoff below {m['min_count']}), NELBO under the model's "
                                 "times and masks", "split": res["split"],
                     **{c: m[c] for c in ("bits_per_token", "bits_per_token_se",
                                          "bits_vs_model", "bits_vs_model_se",
                                          "tokens_scored") if c in m},
                     "perplexity": 2 ** m["bits_per_token"]})
    for m in res.get("markov_baselines", []):
        rows.append({"objective": f"markov{m['order']}",
                     "estimate": f"order-{m['order']} Markov chain (train split, both strands)",
                     "split": res["split"], "bits_per_token": m["bits_per_token"],
                     "perplexity": 2 ** m["bits_per_token"], "tokens_scored": m["tokens_scored"]})
    return rows


def compare_table(mdlm_json, ar_json) -> list[dict]:
    """Rows for MDLM vs AR held-out likelihood, with the perplexity ratio."""
    res = {name: json.loads(Path(p).read_text()) for name, p in
           (("mdlm", mdlm_json), ("ar", ar_json))}
    rows = []
    for name, r in res.items():
        rows.append({"objective": name, "estimate": r["estimate"],
                     "bits_per_token": r["bits_per_token"],
                     "bits_per_token_se": r["bits_per_token_se"],
                     "perplexity": r["perplexity"], "checkpoint_step": r["checkpoint_step"],
                     "perplexity_ratio_to_ar": r["perplexity"] / res["ar"]["perplexity"]})
    return rows


class ARScorer:
    """An AR checkpoint that scores token sequences (exact NLL, windows of its context)."""

    def __init__(self, checkpoint, device: str | None = None, batch_size: int = 32):
        ckpt = load_checkpoint(checkpoint)
        self.model, self.objective, self.tok = model_from_checkpoint(ckpt)
        if self.objective.name != "ar":
            raise DnadiffError(f"{checkpoint}: scoring sequences needs an AR checkpoint "
                               f"(this one was trained with {self.objective.name!r})")
        self.device = device or runtime.device()
        self.model.to(self.device)
        self.window = ckpt["config"]["data"]["window"]
        self.batch_size = batch_size
        self.path = checkpoint

    def check_vocabulary(self, tokenizer, what: str) -> None:
        """Refuse a tokenizer other than the AR model's; ``what`` names its owner."""
        if tokenizer.tokens != self.tok.tokens:
            raise DnadiffError(f"{what} and the AR model {self.path} use different tokenizers "
                               "(train both on the same prepared data)")

    @torch.no_grad()
    def nll(self, seqs) -> tuple[np.ndarray, np.ndarray]:
        """Per-sequence (total nats, scored tokens); each sequence is read in consecutive
        windows of the AR context (each window starts afresh)."""
        pieces, owner = [], []
        for i, s in enumerate(seqs):
            s = np.asarray(s, dtype=np.int64)
            for a in range(0, len(s), self.window):
                pieces.append(s[a:a + self.window])
                owner.append(i)
        nats = np.zeros(len(seqs))
        count = np.zeros(len(seqs))
        order = sorted(range(len(pieces)), key=lambda j: len(pieces[j]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            # one length per forward pass: padding never reaches the model
            for length in sorted({len(pieces[j]) for j in idx}):
                group = [j for j in idx if len(pieces[j]) == length]
                x = torch.from_numpy(np.stack([pieces[j] for j in group])).to(self.device)
                nll, n, _ = self.objective.token_nll(self.model, x, torch.ones_like(x).bool())
                for j, v, c in zip(group, nll.double().cpu().numpy(), n.cpu().numpy()):
                    nats[owner[j]] += v
                    count[owner[j]] += c
        return nats, count
