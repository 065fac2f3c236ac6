"""Fixed-length windows over prepared token arrays (``dnadiff.data.prepare`` for genomes,
``dnadiff.data.text`` for text corpora: one packed token stream per split).

- ``RandomWindows``: training windows drawn uniformly over the positions of a split whose window
  contains no N (windows never straddle an N run); deterministic in (seed, index); optional
  reverse-complement augmentation.
- ``TiledWindows``: non-overlapping tiles covering a split, for evaluation; the tail is padded and
  N/padding positions are excluded from the loss through ``loss_mask``.
Each item is ``{"tokens": LongTensor[L], "loss_mask": BoolTensor[L]}``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dnadiff.data.prepared import PreparedData
from dnadiff.errors import DnadiffError


class RandomWindows(Dataset):
    """``length`` random N-free windows of ``window`` tokens from ``split``."""

    def __init__(self, genome: PreparedData, split: str, window: int, length: int,
                 seed: int = 0, complement=None, rc_prob: float = 0.0):
        self.genome, self.window, self.length, self.seed = genome, window, length, seed
        self.rows = genome.valid_starts(split, window)
        if len(self.rows) == 0:
            raise DnadiffError(f"{genome.path}: no window of {window} bases without N in the "
                               f"{split} split; use a shorter data.window")
        self.cum = np.cumsum(self.rows[:, 2] - self.rows[:, 1])
        self.complement = None if complement is None else np.asarray(complement)
        self.rc_prob = rc_prob

    @property
    def n_positions(self) -> int:
        """How many window starts (without N) the split holds."""
        return int(self.cum[-1])

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple[int, int, bool]:
        """Window ``index`` (seeded by it): its contig, its start, and whether to reverse it."""
        rng = np.random.default_rng([self.seed, index])
        pos = int(rng.integers(self.cum[-1]))
        r = int(np.searchsorted(self.cum, pos, side="right"))
        before = int(self.cum[r - 1]) if r else 0
        ci, lo, _ = self.rows[r]
        rc = self.complement is not None and rng.random() < self.rc_prob
        return int(ci), int(lo + pos - before), bool(rc)

    def __getitem__(self, index: int) -> dict:
        ci, start, rc = self.locate(index)
        ids = np.asarray(self.genome.tokens(ci)[start:start + self.window], dtype=np.int64)
        if rc:
            ids = self.complement[ids][::-1].copy()
        return {"tokens": torch.from_numpy(ids),
                "loss_mask": torch.ones(self.window, dtype=torch.bool)}


class TiledWindows(Dataset):
    """Non-overlapping windows tiling every segment of ``split`` (evaluation)."""

    def __init__(self, genome: PreparedData, split: str, window: int,
                 max_windows: int | None = None):
        self.genome, self.window = genome, window
        tiles = [(ci, s, min(s + window, end)) for ci, start, end in genome.segments(split)
                 for s in range(start, end, window)]
        if max_windows is not None and len(tiles) > max_windows:
            # evenly spaced subset, deterministic
            keep = np.linspace(0, len(tiles) - 1, max_windows).round().astype(int)
            tiles = [tiles[k] for k in keep]
        if not tiles:
            raise DnadiffError(f"{genome.path}: the {split} split is empty")
        self.tiles = tiles
        arr = np.asarray(tiles, dtype=np.int64).reshape(-1, 3)
        self.scorable = int((arr[:, 2] - arr[:, 1]).sum()) - sum(
            int(genome.n_before(ci, arr[arr[:, 0] == ci, 2]).sum()
                - genome.n_before(ci, arr[arr[:, 0] == ci, 1]).sum())
            for ci in np.unique(arr[:, 0]))
        if self.scorable == 0:
            raise DnadiffError(f"{genome.path}: the {split} split has no scorable token "
                               f"(its {len(tiles)} window(s) are all N): nothing to score; "
                               "prepare the data with other contigs in this split")

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> dict:
        ci, s, e = self.tiles[index]
        ids = np.full(self.window, self.genome.pad_id, dtype=np.int64)
        ids[: e - s] = self.genome.tokens(ci)[s:e]
        tokens = torch.from_numpy(ids)
        loss_mask = tokens != self.genome.pad_id
        if self.genome.n_id is not None:
            loss_mask &= tokens != self.genome.n_id
        return {"tokens": tokens, "loss_mask": loss_mask}
