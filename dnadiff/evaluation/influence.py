"""Influence by distance: how far a model actually looks.

For each of ``influence.windows`` random N-free held-out (test) windows, the model's prediction
at a query position i (``predict_at``) is taken once as it is and once for every perturbation:
the token at i - d (left) or i + d (right), for each distance d of ``influence.distances``,
replaced by another generable token. The KL divergence KL(p_orig || p_perturbed) in bits at i
measures how much the token at distance d moves the prediction.

- Masked objectives: i is the window's centre (L // 2), masked, everything else visible (the
  diffusion time is the one at which 1 of L tokens is masked, for time-conditioned models).
- Causal (AR) objectives: i is the window's last position, predicted from tokens < i only
  (the input is cut at i, so no later token can reach it whatever the backbone); only the
  left side exists.
- Replacements: ``influence.alternatives`` tokens drawn uniformly without replacement from the
  generable tokens other than the one there (all of them when fewer remain: DNA's 3 by
  default), seeded by (``influence.seed``, window); the KL is averaged over them.
- Distances beyond the window on a side are left out on that side.

Per distance: the mean KL over windows and its standard error, for each side and for the mean
of the two sides (per window, then over windows). For a backbone with a ``local_reach`` (the
DiT: how far its convolutions alone carry a token), the summary gives the farthest distance
they carry to the query (:func:`local_reach`) and each row says whether its distance lies
beyond it (``beyond_local_reach``): influence there came through attention. For block
diffusion the summary gives the block size and the nearest right distance in a later block
(:func:`later_block_distance`), and each row says whether its right side lies there
(``right_in_later_block``: never seen, so 0, not "beyond the convolutions"). Token ids
and a mask id only: DNA and text.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch

from dnadiff import runtime
from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint
from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import RandomWindows
from dnadiff.errors import DnadiffError
from dnadiff.evaluation.discreteness import time_for_masked_fraction

LOG2E = 1.0 / math.log(2.0)


def query_position(objective, length: int) -> int:
    """The position whose prediction is probed: the centre (masked), the last one (causal)."""
    return length - 1 if objective.causal else length // 2


def predict_at(objective, model, x: torch.Tensor, i: int, t: float | None = None
               ) -> torch.Tensor:
    """``[B, V]`` log-probabilities of the token at position ``i`` of each row of ``x`` given
    the rest of the row (masked objectives: position i masked, the time ``t``, by default the
    one of 1 masked token in the row) or given the tokens before i (causal objectives)."""
    if objective.causal:
        return objective.log_probs(model, objective.shift_right(x[:, :i + 1]))[:, i]
    if t is None:
        t = time_for_masked_fraction(objective.schedule, 1.0 / x.shape[1])
    x = x.clone()
    x[:, i] = objective.mask_id
    tt = torch.full((x.shape[0],), t, device=x.device)
    # block diffusion: the block of i denoised against the earlier blocks (clean); later
    # blocks are never seen
    return objective.one_pass_log_probs(model, x, tt)[:, i]


def kl_bits(logp: torch.Tensor, logq: torch.Tensor) -> np.ndarray:
    """KL(p || q) in bits of rows of log-probabilities (zero-probability terms of p skipped)."""
    logp, logq = logp.double(), logq.double()
    p = logp.exp()
    terms = torch.where(p > 0, p * (logp - logq), torch.zeros_like(p))
    return (terms.sum(-1) * LOG2E).cpu().numpy()


def sides_and_distances(objective, length: int, distances) -> list[tuple[str, int, int]]:
    """(side, d, perturbed position) of every probe that fits the window."""
    i = query_position(objective, length)
    out = []
    for side, sign in (("left", -1), ("right", 1))[:1 if objective.causal else 2]:
        out += [(side, d, i + sign * d) for d in sorted(set(distances))
                if 0 <= i + sign * d < length]
    return out


@torch.no_grad()
def influence_probe(model, objective, windows, distances, generable_ids, alternatives: int,
                    seed: int, batch_size: int = 64, device="cpu") -> dict:
    """KL (bits) per window and probe: ``{"probes": [(side, d, pos)], "kl": [n_windows,
    n_probes]}``, each entry averaged over the replacement tokens of that probe."""
    windows = np.asarray(windows, dtype=np.int64)
    n, length = windows.shape
    probes = sides_and_distances(objective, length, distances)
    if not probes:
        raise DnadiffError(f"influence: no distance of {sorted(set(distances))} fits a window "
                           f"of {length} tokens")
    i = query_position(objective, length)
    t = None if objective.causal else time_for_masked_fraction(objective.schedule, 1.0 / length)
    gen = np.asarray(generable_ids, dtype=np.int64)
    rows, owner = [], []  # owner: (window, probe) per perturbed row; -1 for the original
    for w in range(n):
        rng = np.random.default_rng([seed, w])
        rows.append(windows[w])
        owner.append((w, -1))
        for p, (_side, _d, pos) in enumerate(probes):
            others = gen[gen != windows[w, pos]]
            for tok in rng.choice(others, size=min(alternatives, len(others)), replace=False):
                row = windows[w].copy()
                row[pos] = tok
                rows.append(row)
                owner.append((w, p))
    x_all = torch.from_numpy(np.stack(rows))
    logp = torch.cat([predict_at(objective, model, x_all[b:b + batch_size].to(device), i, t)
                      .cpu() for b in range(0, len(rows), batch_size)])
    orig = {w: r for r, (w, p) in enumerate(owner) if p < 0}
    ref = logp[[orig[w] for w, _ in owner]]
    kl = kl_bits(ref, logp)
    sums = np.zeros((n, len(probes)))
    counts = np.zeros((n, len(probes)))
    for r, (w, p) in enumerate(owner):
        if p >= 0:
            sums[w, p] += kl[r]
            counts[w, p] += 1
    return {"probes": probes, "query_position": i, "kl": sums / np.maximum(counts, 1)}


def local_reach(model, objective) -> int | None:
    """The farthest distance from the query that the backbone's convolutions alone carry to
    its prediction: ``model.local_reach`` (the DiT's), one more for a causal query (predicted
    at the position before it, from the input shifted right); None for a backbone without
    one."""
    reach = getattr(model, "local_reach", None)
    if reach is None:
        return None
    return reach + 1 if objective.causal else reach


def later_block_distance(objective, length: int) -> int | None:
    """Block diffusion: the nearest distance on the right of the query that lies in a later
    block (never seen: its influence is 0 up to float rounding, whatever the backbone); None for
    an objective without blocks (or when the query's block ends the window)."""
    size = getattr(objective, "block_size", None)
    if size is None or objective.causal:
        return None
    i = query_position(objective, length)
    end = min((i // size + 1) * size, length)  # the first position after the query's block
    return end - i if end < length else None


def mark_rows(rows: list[dict], reach: int | None, later: int | None) -> None:
    """Flag the table's rows in place: ``beyond_local_reach`` (distance > ``reach``) when there
    is a reach, and ``right_in_later_block`` (a right-side probe at ``later`` or farther) when
    there are blocks; rows without a right-side probe are never in a later block."""
    for row in rows:
        if reach is not None:
            row["beyond_local_reach"] = row["distance"] > reach
        if later is not None:
            row["right_in_later_block"] = ("right" in row["sides"]
                                           and row["distance"] >= later)


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def influence_table(res: dict) -> list[dict]:
    """One row per distance: mean KL (bits) and its standard error over windows on each side
    and for the mean of both sides (``kl_bits``; the left side alone for a causal model)."""
    by_d: dict[int, dict[str, np.ndarray]] = {}
    for p, (side, d, _pos) in enumerate(res["probes"]):
        by_d.setdefault(d, {})[side] = res["kl"][:, p]
    rows = []
    for d, sides in sorted(by_d.items()):
        row = {"distance": d, "windows": len(res["kl"])}
        for side, v in sides.items():
            row[f"{side}_kl_bits"], row[f"{side}_kl_se"] = _mean_se(v)
        both = np.mean(np.stack(list(sides.values())), axis=0)
        row["kl_bits"], row["kl_se"] = _mean_se(both)
        row["sides"] = "+".join(sides)
        rows.append(row)
    return rows


def run_influence(checkpoint, data_dir, influence_cfg: dict, batch_size: int = 64) -> dict:
    """The probe on ``checkpoint`` over random test windows of its own length."""
    ckpt = load_checkpoint(checkpoint)
    model, objective, tok = model_from_checkpoint(ckpt)
    device = runtime.device()
    model.to(device)
    genome = PreparedData(data_dir)
    if list(tok.tokens) != list(genome.index["tokenizer"]["tokens"]):
        raise DnadiffError(f"{checkpoint} and {genome.path} use different tokenizers (was the "
                           "model trained on this prepared data?)")
    length = ckpt["config"]["data"]["window"]
    n = influence_cfg["windows"]
    ds = RandomWindows(genome, "test", length, n, seed=influence_cfg["seed"])
    windows = np.stack([ds[w]["tokens"].numpy() for w in range(n)])
    t0 = time.time()
    res = influence_probe(model, objective, windows, influence_cfg["distances"],
                          tok.generable_ids, influence_cfg["alternatives"],
                          influence_cfg["seed"], batch_size, device)
    seconds = time.time() - t0
    print(f"influence: {n} windows x {len(res['probes'])} probes in {seconds:.1f} s",
          file=sys.stderr, flush=True)
    rows = influence_table(res)
    reach = local_reach(model, objective)
    later = later_block_distance(objective, length)
    mark_rows(rows, reach, later)
    summary = {"checkpoint": str(checkpoint), "checkpoint_step": ckpt["step"],
               "objective": objective.name, "modality": genome.modality, "windows": n,
               "window": length, "query_position": res["query_position"],
               "alternatives": min(influence_cfg["alternatives"],
                                   len(tok.generable_ids) - 1),
               "local_reach": reach, "block_size": getattr(objective, "block_size", None),
               "later_block_distance": later, "seconds": round(seconds, 2), "rows": rows}
    return summary
