"""The likelihood of given sequences, one figure each (``dnadiff score sequences``,
``Model.log_likelihood``).

Each sequence is cut into consecutive windows of the model's window (each window starts
afresh, as the held-out tiles do) and every window is scored as the held-out likelihood scores
a test window (:func:`~dnadiff.evaluation.likelihood.heldout_nelbo`): the NELBO with
``t_draws`` stratified times for a masked model (summed over the blocks of a block diffusion
model), the exact NLL for an AR model. Windows of one length are scored together, so padding
never reaches the model. A sequence's bits per token are its total over its scored tokens
(N is never scored); its standard error is the spread of that figure over the draws
(std / sqrt(draws)): 0 for the exact AR NLL, NaN for a masked model scored with one draw.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dnadiff.errors import DnadiffError
from dnadiff.evaluation.likelihood import LN2, heldout_nelbo
from dnadiff.tokenizers import encode_or_refuse


def encode_sequences(tokenizer, seqs, names=None) -> list[np.ndarray]:
    """Token ids (int64) of each sequence: a string is encoded, an array of ids taken as is;
    an empty sequence or a character the tokenizer does not know is one error naming it (by
    its place, or by its name in ``names``)."""
    if isinstance(seqs, (str, np.ndarray)):
        seqs = [seqs]
    out = []
    for k, s in enumerate(seqs):
        which = f"sequence {k + 1}" if names is None else f"sequence {names[k]!r}"
        if isinstance(s, str):
            s = encode_or_refuse(tokenizer, s, which)
        ids = np.asarray(s, dtype=np.int64)
        if ids.ndim != 1 or ids.size == 0:
            raise DnadiffError(f"{which} is empty (or not one sequence)")
        if ids.min() < 0 or ids.max() >= tokenizer.vocab_size:
            raise DnadiffError(f"{which}: token ids outside the tokenizer's "
                               f"{tokenizer.vocab_size} ids")
        out.append(ids)
    return out


def sequence_likelihood(model, objective, seqs: list[np.ndarray], window: int,
                        t_draws: int, seed: int, batch_size: int, device="cpu") -> dict:
    """Per-sequence figures, as arrays in the order of ``seqs`` (token ids): ``bits_per_token``,
    ``bits_per_token_se``, ``tokens_scored``, ``windows``; and ``t_draws`` and ``estimate``."""
    scored = objective.allowed.numpy()  # what a likelihood scores: the generable ids
    pieces: dict[int, list[tuple[int, np.ndarray]]] = {}
    n_win = np.zeros(len(seqs), dtype=np.int64)
    for k, s in enumerate(seqs):
        for a in range(0, len(s), window):
            pieces.setdefault(len(s[a:a + window]), []).append((k, s[a:a + window]))
            n_win[k] += 1
    draws = t_draws if objective.stochastic else 1
    nats = np.zeros((draws, len(seqs)))
    tokens = np.zeros(len(seqs))
    estimate = None
    for length in sorted(pieces):
        owners = np.array([k for k, _ in pieces[length]])
        items = [{"tokens": torch.from_numpy(w), "loss_mask": torch.from_numpy(scored[w])}
                 for _, w in pieces[length]]
        res = heldout_nelbo(model, objective, items, batch_size, t_draws, seed, device,
                            keep_draws=True)
        for d in range(draws):
            np.add.at(nats[d], owners, res["_draw_nats"][d])
        np.add.at(tokens, owners, res["_window_tokens"] / draws)
        estimate = res["estimate"]
    with np.errstate(invalid="ignore", divide="ignore"):
        bits = nats / tokens / LN2  # [draws, sequences]
    if draws > 1:
        se = bits.std(0, ddof=1) / math.sqrt(draws)
    else:
        se = np.full(len(seqs), 0.0 if not objective.stochastic else float("nan"))
    return {"bits_per_token": bits.mean(0), "bits_per_token_se": se,
            "tokens_scored": tokens.astype(np.int64), "windows": n_win, "t_draws": draws,
            "estimate": estimate}


#: the columns of a sequence table, in order
SEQUENCE_COLUMNS = ["name", "length", "tokens_scored", "windows", "bits_per_token",
                    "bits_per_token_se", "t_draws", "estimate"]


def sequence_rows(names: list[str], seqs: list[np.ndarray], res: dict) -> list[dict]:
    """One table row per sequence."""
    return [{"name": name, "length": len(s), "tokens_scored": int(res["tokens_scored"][k]),
             "windows": int(res["windows"][k]), "bits_per_token": float(res["bits_per_token"][k]),
             "bits_per_token_se": float(res["bits_per_token_se"][k]), "t_draws": res["t_draws"],
             "estimate": res["estimate"]} for k, (name, s) in enumerate(zip(names, seqs))]


def score_fasta(checkpoint, fasta, score_cfg: dict) -> list[dict]:
    """``dnadiff score sequences``: the table of every record of the FASTA (or GenBank) file
    ``fasta`` scored by ``checkpoint`` (``score.t_draws``, ``score.seed``,
    ``score.batch_size``)."""
    from dnadiff.data.fasta import read_sequences
    from dnadiff.evaluation.likelihood import load_model
    from dnadiff.evaluation.variants import require_dna

    ckpt, model, objective, tok, device = load_model(checkpoint)
    require_dna(tok, checkpoint, "dnadiff score sequences reads DNA (FASTA); score text "
                "with the Python API")
    names, seqs = [], []
    for name, _, ids in read_sequences(fasta, tok):
        names.append(name)
        seqs.append(np.asarray(ids, dtype=np.int64))
    res = sequence_likelihood(model, objective, seqs, ckpt["config"]["data"]["window"],
                              score_cfg["t_draws"], score_cfg["seed"], score_cfg["batch_size"],
                              device)
    return sequence_rows(names, seqs, res)
