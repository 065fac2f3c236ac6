"""Scores of generated text: generative perplexity under an AR model and unigram entropy.

*Generative perplexity* is exp(mean NLL per token) of the samples under an autoregressive model
trained on the same corpus in the same run (``results/<run>/ar/model.pt``), read in windows of
the AR model's context. It rewards fluent text, and also rewards repetition, so it is quoted
next to the *unigram entropy* of each sample (bits; low means the sample repeats few tokens, the
degenerate way to a low perplexity). Both are given for real held-out windows of the same
length too: the reference a perfect generator would match. ``trap_scorer`` scores the sets of
the marginal trap (:mod:`dnadiff.evaluation.discreteness`) of a text model the same way.
"""

from __future__ import annotations

import math

import numpy as np

from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import RandomWindows
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.evaluation.composition import entropy_bits
from dnadiff.evaluation.likelihood import ARScorer
from dnadiff.generation import read_text_samples


def score_text_set(seqs, scorer: ARScorer | None) -> dict:
    """Generative perplexity (pooled over tokens, and the median per sample), unigram entropy
    (mean and sd over samples) and the share of [EOS] tokens."""
    ent = np.array([entropy_bits(np.bincount(np.asarray(s, dtype=np.int64))) for s in seqs])
    out = {"n": len(seqs), "length": int(np.mean([len(s) for s in seqs])),
           "unigram_entropy_bits": float(ent.mean()), "unigram_entropy_sd": float(ent.std())}
    if scorer is not None:
        nats, count = scorer.nll(seqs)
        out["gen_perplexity"] = math.exp(nats.sum() / count.sum())
        out["gen_perplexity_median"] = float(np.median(np.exp(nats / count)))
        eos = scorer.tok.eos_id
        if eos is not None:
            out["eos_fraction"] = float(np.mean([np.mean(np.asarray(s) == eos) for s in seqs]))
    return out


def heldout_windows(data_dir, length: int, n: int, seed: int, split: str = "test"
                    ) -> list[np.ndarray]:
    """``n`` random windows of ``length`` tokens of ``split``, drawn with ``seed``."""
    genome = PreparedData(data_dir)
    ds = RandomWindows(genome, split, length, n, seed=seed)
    return [ds[i]["tokens"].numpy() for i in range(n)]


def evaluate_text_samples(samples, data_dir, ar_checkpoint, eval_cfg: dict) -> dict:
    """Score text samples (JSON Lines from ``dnadiff sample``) and real held-out windows."""
    recs = read_text_samples(samples)
    seqs = [np.asarray(r["tokens"], dtype=np.int64) for r in recs]
    scorer = ARScorer(ar_checkpoint, batch_size=eval_cfg["batch_size"])
    genome = PreparedData(data_dir)
    scorer.check_vocabulary(genome.tokenizer, str(data_dir))
    generable = np.zeros(scorer.tok.vocab_size + 1, dtype=bool)
    generable[scorer.tok.generable_ids] = True
    for r, s in zip(recs, seqs):
        bad = s[(s < 0) | (s >= len(generable) - 1) | ~generable[np.clip(s, 0, len(generable) - 1)]]
        if bad.size:
            raise InputFileError(samples, f"line {r['_line']}: sample {r.get('id')!r} holds token "
                                          f"id {int(bad[0])}, which a model cannot generate "
                                          "(outside the vocabulary, [MASK] or [PAD])")
    length = int(np.median([len(s) for s in seqs]))
    real = heldout_windows(data_dir, length, len(seqs), eval_cfg["seed"])
    rows = [{"set": "mdlm", **score_text_set(seqs, scorer)},
            {"set": "real_heldout", **score_text_set(real, scorer)}]
    return {"ar_checkpoint": str(ar_checkpoint), "rows": rows}


def trap_scorer(ar_checkpoint, tok, eval_cfg: dict, data_dir, length: int, n: int):
    """``(score, real)`` for the marginal trap of a text model: generative perplexity under the
    run's AR model and unigram entropy of a set, and real reference windows of the test split
    (the AR model was selected on validation)."""
    if ar_checkpoint is None:
        raise DnadiffError("the marginal trap of a text model needs the run's AR model "
                           "(--ar-checkpoint) for generative perplexity")
    scorer = ARScorer(ar_checkpoint, batch_size=eval_cfg["batch_size"])
    scorer.check_vocabulary(tok, "the MDLM checkpoint")
    real = heldout_windows(data_dir, length, n, eval_cfg["seed"] + 2, split="test")
    return (lambda seqs: {k: v for k, v in score_text_set(seqs, scorer).items()
                          if k not in ("n", "length")}), real
