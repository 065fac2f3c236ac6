"""Zero-shot variant effects: the score of a single-nucleotide variant is
log p(alt) - log p(ref) at the variant, in nats, given a window of context around it
(``dnadiff score variants``, ``Model.variant_effects``, ``dnadiff evaluate variants``).
Negative: the model finds the alternative allele less likely than the reference's.

- **Masked models (MDLM)**: the variant's position masked, every other base of the window
  visible, one forward pass: log p(alt | rest) - log p(ref | rest), the masked marginal of GPN
  (``predict_at``). A block diffusion model predicts it as it generates: the variant's block
  against the earlier blocks (clean), the rest of its own block visible; **later blocks are
  not visible to a block model**.
- **AR models**: log p(window with alt) - log p(window with ref), both exact (only the
  positions from the variant on differ, so only they are scored).
- **k-th order Markov chains** (the baseline): the same difference of window log-likelihoods.

The window holds ``window`` bases with the variant at ``window // 2``. Near a contig end it is
moved to lie inside the contig (the variant off-centre: fewer bases on one side, more on the
other), and a contig shorter than the window is the whole window; ``context_left`` and
``context_right`` say what each variant saw. ``both_strands``: the mean of the scores of the
window and of its reverse complement (alleles complemented; the complement is the tokenizer's).
"""

from __future__ import annotations

import numpy as np
import torch

from dnadiff.data.vcf import SNV
from dnadiff.errors import DnadiffError
from dnadiff.evaluation.influence import predict_at


def variant_windows(reference: dict[str, np.ndarray], snvs: list[SNV], window: int
                    ) -> tuple[list[np.ndarray], np.ndarray]:
    """The reference window (int64 ids) of each SNV and the variant's offset in it."""
    wins, offsets = [], np.zeros(len(snvs), dtype=np.int64)
    for k, s in enumerate(snvs):
        seq, p = reference[s.chrom], s.pos - 1
        w = min(window, len(seq))
        a = min(max(p - window // 2, 0), len(seq) - w)
        wins.append(np.asarray(seq[a:a + w], dtype=np.int64))
        offsets[k] = p - a
    return wins, offsets


def group_scores(score_group, windows: list[np.ndarray], offsets: np.ndarray, refs, alts,
                 batch_size: int) -> np.ndarray:
    """``score_group(x [B, L], i, ref [B], alt [B]) -> [B]`` over windows grouped by length and
    variant offset (one offset per call), ``batch_size`` windows at a time."""
    refs, alts = np.asarray(refs, np.int64), np.asarray(alts, np.int64)
    out = np.zeros(len(windows))
    keys = np.array([len(w) for w in windows], dtype=np.int64) * (1 << 32) + offsets
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        i = int(offsets[idx[0]])
        for b in range(0, len(idx), batch_size):
            sub = idx[b:b + batch_size]
            x = np.stack([windows[j] for j in sub])
            out[sub] = score_group(x, i, refs[sub], alts[sub])
    return out


def snv_scores(score_group, reference: dict[str, np.ndarray], snvs: list[SNV], tokenizer,
               window: int, both_strands: bool = False, batch_size: int = 16) -> dict:
    """Scores of ``snvs`` (``score``; with ``both_strands`` also ``score_forward`` and
    ``score_reverse``, whose mean it is) and each variant's context (``context_left``,
    ``context_right``), as arrays in the order of ``snvs``."""
    if not snvs:
        raise DnadiffError("no variants to score")
    wins, offs = variant_windows(reference, snvs, window)
    refs = np.array([int(tokenizer.encode(s.ref)[0]) for s in snvs])
    alts = np.array([int(tokenizer.encode(s.alt)[0]) for s in snvs])
    fwd = group_scores(score_group, wins, offs, refs, alts, batch_size)
    lengths = np.array([len(w) for w in wins])
    res = {"score": fwd, "context_left": offs, "context_right": lengths - 1 - offs}
    if both_strands:
        comp = np.asarray(tokenizer.complement, dtype=np.int64)
        rc = [tokenizer.reverse_complement(w).astype(np.int64) for w in wins]
        rev = group_scores(score_group, rc, lengths - 1 - offs, comp[refs], comp[alts],
                           batch_size)
        res.update(score=(fwd + rev) / 2, score_forward=fwd, score_reverse=rev)
    return res


def model_scorer(model, objective, tokenizer, device):
    """The ``score_group`` of a trained model (see the module's docstring)."""
    scored = objective.allowed  # what a likelihood scores: the generable ids

    @torch.no_grad()
    def score(x: np.ndarray, i: int, ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(x).to(device)
        ref, alt = torch.from_numpy(ref).to(device), torch.from_numpy(alt).to(device)
        rows = torch.arange(len(x), device=device)
        if not objective.causal:
            logp = predict_at(objective, model, x, i)
            return (logp[rows, alt] - logp[rows, ref]).double().cpu().numpy()
        xa = x.clone()
        xa[:, i] = alt
        both = torch.cat([x, xa])
        lm = scored.to(device)[both]
        lm[:, :i] = False  # before the variant the two windows are the same
        nll, _, _ = objective.token_nll(model, both, lm)
        return (nll[:len(x)] - nll[len(x):]).double().cpu().numpy()

    return score


def markov_scorer(chain):
    """The ``score_group`` of a :class:`~dnadiff.evaluation.baselines.MarkovChain`: the
    difference of the log-likelihoods of the window with each allele."""

    def score(x: np.ndarray, i: int, ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
        xa = x.copy()
        xa[:, i] = alt
        return chain.window_log_likelihood(xa) - chain.window_log_likelihood(x)

    return score


def require_dna(tokenizer, where, need: str = "variants need a DNA model") -> None:
    """A DNA model, else one line naming ``where`` (the model) and what needs DNA."""
    if tokenizer.modality != "dna":
        raise DnadiffError(f"{where} is a {tokenizer.modality} model: {need}")


def check_window(window: int, model_window: int, where) -> None:
    """A variant window no longer than the model's own (``where``: the model, for the line)."""
    if window > model_window:
        raise DnadiffError(f"config key 'score.window' ({window}) is longer than the window "
                           f"{where} was trained on ({model_window}): use at most that")


#: the columns of a variant table, in order (``info`` only when asked for)
VARIANT_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "score", "score_forward",
                   "score_reverse", "context_left", "context_right", "info"]


def variant_rows(snvs: list[SNV], res: dict, info: bool = False) -> list[dict]:
    """One row per SNV: its VCF fields, ``res``'s scores and context (and INFO if asked)."""
    rows = []
    for k, s in enumerate(snvs):
        row = {"chrom": s.chrom, "pos": s.pos, "id": s.id, "ref": s.ref, "alt": s.alt}
        row.update({c: res[c][k].item() for c in VARIANT_COLUMNS if c in res})
        if info:
            row["info"] = s.info
        rows.append(row)
    return rows


def score_vcf(checkpoint, vcf, reference_fasta, score_cfg: dict) -> list[dict]:
    """``dnadiff score variants``: the table of the SNVs of ``vcf`` (checked against
    ``reference_fasta``) scored by ``checkpoint`` with ``score.window``,
    ``score.both_strands``, ``score.batch_size`` (and the INFO field with ``score.info``)."""
    from dnadiff.data.vcf import read_reference, read_snvs
    from dnadiff.evaluation.likelihood import load_model

    ckpt, model, objective, tok, device = load_model(checkpoint)
    require_dna(tok, checkpoint)
    check_window(score_cfg["window"], ckpt["config"]["data"]["window"], checkpoint)
    reference = read_reference(reference_fasta, tok)
    snvs = read_snvs(vcf, reference, reference_fasta, tok)
    res = snv_scores(model_scorer(model, objective, tok, device), reference, snvs, tok,
                     score_cfg["window"], score_cfg["both_strands"], score_cfg["batch_size"])
    return variant_rows(snvs, res, score_cfg["info"])
