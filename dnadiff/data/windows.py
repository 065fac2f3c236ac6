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

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dnadiff.errors import DnadiffError, InputFileError


class PreparedGenome:
    """A prepared genome directory: ``index.json`` plus memory-mapped token arrays."""

    def __init__(self, path):
        self.path = Path(path)
        index_file = self.path / "index.json"
        if not index_file.exists():
            raise InputFileError(self.path, "not a prepared data directory (no index.json); "
                                            "run `dnadiff prepare` first")
        try:
            self.index = json.loads(index_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputFileError(index_file, f"corrupt JSON ({exc}); run `dnadiff prepare` "
                                             "again") from None
        missing = [k for k in ("contigs", "tokenizer") if k not in self.index]
        if missing:
            raise InputFileError(index_file, f"no {missing[0]!r} entry: not written by "
                                             "`dnadiff prepare`, or damaged; prepare again")
        self.contigs = self.index["contigs"]
        tk = self.index["tokenizer"]
        self.modality = tk.get("modality", "dna")
        # N (unknown base) is never a training target; text has no such token
        self.pad_id = tk["pad_id"]
        self.n_id = tk["tokens"].index("N") if self.modality == "dna" else None
        self._arrays: dict[int, np.ndarray] = {}

    def tokens(self, i: int) -> np.ndarray:
        if i not in self._arrays:
            path = self.path / self.contigs[i]["file"]
            try:
                arr = np.load(path, mmap_mode="r")
            except FileNotFoundError:
                raise InputFileError(path, "token array missing from the prepared data; run "
                                           "`dnadiff prepare` again") from None
            except (OSError, ValueError, EOFError) as exc:
                raise InputFileError(path, f"truncated or corrupt token array ({exc}); run "
                                           "`dnadiff prepare` again") from None
            if arr.shape != (self.contigs[i]["length"],):
                raise InputFileError(path, f"holds {arr.shape} tokens, index.json says "
                                           f"{self.contigs[i]['length']}: truncated or "
                                           "replaced; run `dnadiff prepare` again")
            self._arrays[i] = arr
        return self._arrays[i]

    def segments(self, split: str) -> list[tuple[int, int, int]]:
        """(contig index, start, end) of every segment of ``split``."""
        return [(i, s["start"], s["end"]) for i, c in enumerate(self.contigs)
                for s in c["segments"] if s["split"] == split]

    def split_arrays(self, split: str) -> list[np.ndarray]:
        """The (memory-mapped) token arrays of every segment of ``split``."""
        return [self.tokens(ci)[a:b] for ci, a, b in self.segments(split)]

    def valid_starts(self, split: str, window: int) -> np.ndarray:
        """Rows (contig, lo, hi): window starts in [lo, hi) give N-free windows inside ``split``."""
        rows = []
        for ci, start, end in self.segments(split):
            # N-free stretches of this segment
            cursor = start
            for a, b in [*self.contigs[ci]["n_runs"], [end, end]]:
                a, b = max(a, start), min(b, end)
                if b < cursor or a > end:
                    continue
                if a - cursor >= window:
                    rows.append((ci, cursor, a - window + 1))
                cursor = max(cursor, b)
                if cursor >= end:
                    break
        return np.array(rows, dtype=np.int64).reshape(-1, 3)

    def n_before(self, i: int, positions) -> np.ndarray:
        """Number of N tokens before each position of contig ``i`` (from its sorted N runs)."""
        positions = np.asarray(positions, dtype=np.int64)
        runs = np.asarray(self.contigs[i]["n_runs"], dtype=np.int64).reshape(-1, 2)
        if len(runs) == 0:
            return np.zeros_like(positions)
        cum = np.cumsum(runs[:, 1] - runs[:, 0])
        j = np.searchsorted(runs[:, 0], positions, side="right")  # runs starting at or before
        last = np.maximum(j - 1, 0)
        before = cum[last] - np.clip(runs[last, 1] - positions, 0, None)
        return np.where(j > 0, before, 0)

    def composition(self, split: str) -> dict[str, int]:
        return self.index["composition"][split]

    def token_counts(self, split: str) -> np.ndarray:
        """Count of every token id in ``split`` (vocabulary order)."""
        counts = self.index.get("token_counts")
        if counts is not None:
            return np.asarray(counts[split], dtype=np.int64)
        # prepared before token_counts existed (DNA): from the base composition
        tokens = self.index["tokenizer"]["tokens"]
        comp = self.composition(split)
        return np.array([comp.get(t, 0) for t in tokens], dtype=np.int64)


class RandomWindows(Dataset):
    """``length`` random N-free windows of ``window`` tokens from ``split``."""

    def __init__(self, genome: PreparedGenome, split: str, window: int, length: int,
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
        return int(self.cum[-1])

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple[int, int, bool]:
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

    def __init__(self, genome: PreparedGenome, split: str, window: int,
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
