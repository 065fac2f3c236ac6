"""Prepared data on disk (``dnadiff prepare``): ``index.json`` plus one memory-mapped token array
per contig (a genome's chromosomes, or a text corpus's train / validation / test streams)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dnadiff.errors import InputFileError


class PreparedData:
    """A prepared data directory: ``index.json`` plus memory-mapped token arrays (a genome or a
    text corpus)."""

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
