"""A sequence classifier on a denoiser backbone, and the batching that keeps padding out of it.

Used by downstream classification (fine-tuning, linear probe), by the Frechet distance of
generated sequences (its embeddings) and by the oracle of class-conditional generation. Its
checkpoint format is in :mod:`dnadiff.checkpoint` (``save_classifier`` / ``load_classifier``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dnadiff.tokenizers import PAD_ID


def pad_batch(seqs, pad_id: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [B, Lmax] (padded with ``pad_id``) and the mask of real positions."""
    n = max(len(s) for s in seqs)
    out = np.full((len(seqs), n), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    tokens = torch.from_numpy(out)
    return tokens, tokens != pad_id


class SequenceClassifier(nn.Module):
    """A backbone's final-norm features, mean-pooled over the real positions, then linear."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.dropout = dropout
        self.head = nn.Linear(backbone.feature_width, num_classes)

    def pooled(self, tokens, mask):
        """Mean of the features over each sequence's real positions.

        Padding never reaches the backbone (attention, convolutions and scans would mix it into
        the real positions): a batch of mixed lengths (right-padded, see ``pad_batch``) runs as
        one sub-batch per length. A time-conditioned backbone sees clean input (sigma = 0).
        """
        sigma = (torch.zeros(tokens.shape[0], device=tokens.device)
                 if self.backbone.time_conditioning else None)
        if bool(mask.all()):
            return self.backbone.features(tokens, sigma).mean(1)
        lengths = mask.sum(1)
        out = None
        for n in torch.unique(lengths).tolist():
            rows = torch.nonzero(lengths == n).squeeze(1)
            f = self.backbone.features(tokens[rows, :n],
                                       None if sigma is None else sigma[rows]).mean(1)
            if out is None:
                out = f.new_zeros(tokens.shape[0], f.shape[1])
            out = out.index_copy(0, rows, f)
        return out

    def forward(self, tokens, mask):
        """Class logits [B, classes] of right-padded ``tokens`` with real-position ``mask``."""
        return self.head(F.dropout(self.pooled(tokens, mask), self.dropout, self.training))


@torch.no_grad()
def _batched(clf: SequenceClassifier, seqs, fn, batch_size: int, device) -> np.ndarray:
    """``fn(tokens, mask)`` over ``seqs`` in eval mode, batch by batch, concatenated."""
    device = device or next(clf.parameters()).device
    was = clf.training
    clf.eval()
    out = []
    for i in range(0, len(seqs), batch_size):
        tokens, mask = pad_batch(seqs[i:i + batch_size])
        out.append(fn(tokens.to(device), mask.to(device)).float().cpu())
    clf.train(was)
    return torch.cat(out).numpy()


def predict_proba(model: SequenceClassifier, seqs, batch_size: int = 128,
                  device=None) -> np.ndarray:
    """Class probabilities [N, classes]."""
    return _batched(model, seqs, lambda t, m: torch.softmax(model(t, m).float(), -1),
                    batch_size, device)


def embed(model, seqs, batch_size: int = 128, device=None) -> np.ndarray:
    """Mean-pooled features [N, width] of a ``SequenceClassifier`` (or of a bare backbone)."""
    if isinstance(model, SequenceClassifier):
        clf = model
    else:  # a bare backbone is left in the mode it was in
        clf = SequenceClassifier(model, 2).train(model.training)
    return _batched(clf, seqs, clf.pooled, batch_size, device)


@torch.no_grad()
def position_features(backbone, seqs, batch_size: int = 128, device=None) -> list[np.ndarray]:
    """Per-position features [length, width] of each sequence (token ids) under a bare backbone
    (eval mode; sequences of one length run together, so padding never reaches it; a
    time-conditioned backbone sees clean input, sigma = 0)."""
    device = device or next(backbone.parameters()).device
    was = backbone.training
    backbone.eval()
    out: list = [None] * len(seqs)
    by_length: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        by_length.setdefault(len(s), []).append(i)
    for idx in by_length.values():
        for b in range(0, len(idx), batch_size):
            sub = idx[b:b + batch_size]
            x = torch.from_numpy(np.stack([np.asarray(seqs[i], np.int64) for i in sub]))
            x = x.to(device)
            sigma = (torch.zeros(len(sub), device=device) if backbone.time_conditioning
                     else None)
            f = backbone.features(x, sigma).float().cpu().numpy()
            for j, i in enumerate(sub):
                out[i] = f[j]
    backbone.train(was)
    return out
