"""The masked Markov reference: the "Markov chain" of the masked objective.

A count model that predicts a masked token from the tokens within +-k positions of it. Each of
those 2k neighbours is either a token or a *wildcard* (masked, N, padding, or outside the
window: nothing is known there), so the model answers every masking pattern a masked diffusion
model sees, and is scored under the very same times and masks (``heldout_nelbo``: it is called
like a denoiser, ``model(x_t) -> logits``).

Counts (``fit_masked_markov``):

- every (2k+1)-gram of generable tokens of the training split (on both strands when the
  tokenizer has a complement map: each sequence and its reverse complement) is counted under
  its 2k neighbours (order -k..-1, +1..+k) and its centre;
- a wildcard neighbour's counts are the sums over that neighbour's axis of the full counts
  (dense: a "sum over this axis" slice appended to each neighbour axis, ``[G+1]*2k x G``;
  sparse, for large vocabularies at k <= 2: every full gram also counted under each of its
  2^(2k) wildcard patterns). So every context, wildcards included, counts the same positions:
  those with a full +-k context of generable tokens in the training split.

Prediction: p(c | context) = (n(context, c) + 0.5) / (n(context) + 0.5 G) (add-0.5; G generable
tokens). *Backoff*: when n(context) < ``min_count``, the neighbours at distance k are made
wildcards (the +-(k-1) context), and so on down to +-0 (the order-0 composition of those
positions), which is always used when nothing wider has ``min_count`` observations.

Token ids only, through the tokenizer dict (generable ids, complement map): DNA and text alike.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dnadiff.errors import DnadiffError

#: the largest dense table (entries); above it, k <= 2 is counted sparsely and larger k refused
DENSE_MAX = 1 << 26
CHUNK = 1 << 22


class MaskedMarkov:
    """A fitted +-k masked count model; ``model(tokens) -> logits`` like a denoiser (float32
    log-probabilities on the generable ids, -inf elsewhere)."""

    def __init__(self, k: int, generable_ids, vocab_size: int, table, totals, min_count: int,
                 pseudocount: float = 0.5, positions: int = 0):
        self.k, self.min_count, self.alpha = int(k), int(min_count), float(pseudocount)
        self.generable = np.asarray(generable_ids, dtype=np.int64)
        self.G, self.vocab_size, self.positions = len(self.generable), vocab_size, positions
        self.table, self.totals = table, totals  # arrays (dense) or (keys, counts) (sparse)
        self.lut = np.full(vocab_size, self.G, dtype=np.int64)  # id -> symbol; G = wildcard
        self.lut[self.generable] = np.arange(self.G)
        self.weights = (self.G + 1) ** np.arange(2 * self.k - 1, -1, -1, dtype=np.int64)

    @property
    def dense(self) -> bool:
        return not isinstance(self.table, tuple)

    def describe(self) -> dict:
        return {"k": self.k, "min_count": self.min_count, "pseudocount": self.alpha,
                "storage": "dense" if self.dense else "sparse",
                "train_positions": int(self.positions)}

    @staticmethod
    def _lookup(store, keys: np.ndarray) -> np.ndarray:
        if not isinstance(store, tuple):
            return store[keys]
        skeys, counts = store
        pos = np.minimum(np.searchsorted(skeys, keys), len(skeys) - 1)
        return np.where(skeys[pos] == keys, counts[pos], 0)

    def context_codes(self, tokens, clean=None, size: int | None = None) -> np.ndarray:
        """``[B, L, k + 1]``: the context code of every position at each level j = 0..k (the
        neighbours within distance j; farther ones wildcards). With ``clean`` and ``size``
        (block diffusion): a neighbour in an earlier block is read from ``clean``, one in a
        later block is a wildcard, as the block model sees them."""
        sym = self.lut[np.asarray(tokens, dtype=np.int64)]
        k, G = self.k, self.G
        if k == 0:
            return np.zeros((*sym.shape, 1), dtype=np.int64)
        padded = np.pad(sym, ((0, 0), (k, k)), constant_values=G)
        L = sym.shape[1]
        offsets = [o for o in range(-k, k + 1) if o]
        digits = np.stack([padded[:, k + o:k + o + L] for o in offsets], axis=-1)
        if clean is not None:
            before = np.pad(self.lut[np.asarray(clean, dtype=np.int64)], ((0, 0), (k, k)),
                            constant_values=G)
            blk = np.arange(L) // size
            bpad = np.pad(blk, (k, k), constant_values=-1)
            bpad[k + L:] = blk[-1] + 1  # past the window: a later block (a wildcard anyway)
            for n, o in enumerate(offsets):
                bj = bpad[k + o:k + o + L]
                digits[..., n] = np.where(bj == blk, digits[..., n],
                                          np.where(bj < blk, before[:, k + o:k + o + L], G))
        dist = np.abs(np.array(offsets))
        return np.stack([np.where(dist <= j, digits, G) @ self.weights for j in range(k + 1)],
                        axis=-1)

    def probs(self, tokens, clean=None, size: int | None = None) -> np.ndarray:
        """``[B, L, G]`` float64: p(centre | its +-k neighbours, with backoff) at every
        position (the centre's own token is never looked at; ``clean``, ``size``: as the
        block model sees them, :meth:`context_codes`)."""
        codes = self.context_codes(tokens, clean, size)
        tot = self._lookup(self.totals, codes)
        level = np.zeros(codes.shape[:-1], dtype=np.int64)  # the widest level with min_count
        for j in range(1, self.k + 1):
            level = np.where(tot[..., j] >= self.min_count, j, level)
        ctx = np.take_along_axis(codes, level[..., None], -1)[..., 0]
        n = np.take_along_axis(tot, level[..., None], -1)[..., 0]
        counts = self._lookup(self.table, ctx[..., None] * self.G + np.arange(self.G))
        return (counts + self.alpha) / (n[..., None] + self.alpha * self.G)

    def __call__(self, tokens, sigma=None, cond=None) -> torch.Tensor:
        return self._logits(self.probs(tokens.cpu().numpy()), tokens.device)

    def block_logits(self, noisy, clean, size: int, sigma=None, cond=None) -> torch.Tensor:
        """Logits as a block diffusion model's (earlier blocks clean, later ones unseen): the
        masked reference of a block model, scored under its times and masks."""
        return self._logits(self.probs(noisy.cpu().numpy(), clean.cpu().numpy(), size),
                            noisy.device)

    def _logits(self, p: np.ndarray, device) -> torch.Tensor:
        out = torch.full((*p.shape[:-1], self.vocab_size), float("-inf"))
        out[..., torch.from_numpy(self.generable)] = torch.from_numpy(np.log(p)).float()
        return out.to(device)

    def eval(self):  # called like a backbone
        return self


def gram_keys(sym: np.ndarray, k: int, G: int, base: int) -> np.ndarray:
    """Keys ``context * G + centre`` (context: the 2k neighbours, order -k..-1, +1..+k, as
    base-``base`` digits) of every (2k+1)-gram of ``sym`` (symbols; G or above = not generable)
    that holds only generable tokens."""
    w = 2 * k + 1
    weights = base ** np.arange(2 * k - 1, -1, -1, dtype=np.int64)
    s = np.asarray(sym, dtype=np.int64)
    m = len(s) - w + 1
    if m <= 0:
        return np.zeros(0, np.int64)
    bad = np.concatenate(([0], np.cumsum(s >= G)))
    ctx = np.zeros(m, dtype=np.int64)
    for j, o in enumerate(o for o in range(w) if o != k):
        ctx += s[o:o + m] * weights[j]
    return (ctx * G + s[k:k + m])[bad[w:] == bad[:m]]


def _chunks(seqs, k: int):
    """Each sequence in pieces of ``CHUNK`` positions overlapping by 2k (every gram once)."""
    for s in seqs:
        for start in range(0, max(len(s) - 2 * k, 1), CHUNK):
            yield s[start:start + CHUNK + 2 * k]


def _dense_table(pieces, k: int, G: int):
    """The dense ``[G+1]*2k x G`` table (flat, contexts in base G+1) and its context totals."""
    full = np.zeros(G ** (2 * k + 1), dtype=np.int64)
    for sym in pieces:
        full += np.bincount(gram_keys(sym, k, G, G), minlength=full.size)
    full = full.reshape([G] * (2 * k + 1))
    for axis in range(2 * k):  # a wildcard is the sum over its neighbour's axis
        full = np.concatenate([full, full.sum(axis=axis, keepdims=True)], axis=axis)
    return full.reshape(-1), full.sum(-1).reshape(-1)


def _sparse_table(pieces, k: int, G: int):
    """Sorted (keys, counts) of every context with its wildcard patterns, and the totals."""
    keys = np.concatenate([gram_keys(sym, k, G, G + 1) for sym in pieces])
    if not len(keys):
        return (keys, keys), (np.zeros(1, np.int64), np.zeros(1, np.int64))
    uniq, cnt = np.unique(keys, return_counts=True)
    weights = (G + 1) ** np.arange(2 * k - 1, -1, -1, dtype=np.int64)
    digits, centre = (uniq[:, None] // G // weights) % (G + 1), uniq % G
    all_keys = [np.where([(pattern >> j) & 1 for j in range(2 * k)], G, digits) @ weights * G
                + centre for pattern in range(1 << (2 * k))]
    skeys, inv = np.unique(np.concatenate(all_keys), return_inverse=True)
    counts = np.bincount(inv, weights=np.tile(cnt, 1 << (2 * k))).astype(np.int64)
    tkeys, tinv = np.unique(skeys // G, return_inverse=True)
    return (skeys, counts), (tkeys, np.bincount(tinv, weights=counts).astype(np.int64))


def order_problem(k: int, generable: int) -> str | None:
    """Why a +-k masked count model of ``generable`` tokens cannot be fitted, or None."""
    entries = (generable + 1) ** (2 * k) * generable
    if entries > DENSE_MAX and (k > 2 or math.log2(entries) > 62):
        return (f"masked Markov +-{k}: a vocabulary of {generable} tokens has {entries:.3g} "
                "contexts; use an order of at most 2 for it (sparse counting) or drop it from "
                "evaluate.masked_markov_orders")
    return None


def fit_masked_markov(train, k: int, tokenizer, min_count: int,
                      pseudocount: float = 0.5, both_strands: bool = True) -> MaskedMarkov:
    """The +-k masked count model of the token arrays ``train`` (both strands when the
    ``tokenizer`` has a complement map, unless ``both_strands`` is False)."""
    gen = np.asarray(tokenizer.generable_ids, dtype=np.int64)
    vocab = tokenizer.vocab_size
    G = len(gen)
    problem = order_problem(k, G)
    if problem:
        raise DnadiffError(problem)
    dense = (G + 1) ** (2 * k) * G <= DENSE_MAX
    lut = np.full(vocab, G, dtype=np.int64)
    lut[gen] = np.arange(G)
    comp = tokenizer.complement if both_strands else None
    seqs = [lut[np.asarray(s)] for s in train]
    if comp is not None:
        comp = np.asarray(comp)
        seqs += [lut[comp[np.asarray(s)][::-1]] for s in train]
    table, totals = (_dense_table if dense else _sparse_table)(list(_chunks(seqs, k)), k, G)
    # the all-wildcard context (the largest code) counts every position counted
    positions = int(totals[1][-1] if isinstance(totals, tuple) else totals[-1])
    if not positions:
        raise DnadiffError(f"masked Markov +-{k}: the training split has no {2 * k + 1} "
                           "consecutive generable tokens to count")
    return MaskedMarkov(k, gen, vocab, table, totals, min_count, pseudocount, positions)
