"""Prepared data on disk (``dnadiff prepare``): ``index.json`` plus one memory-mapped token array
per contig (a genome's chromosomes, or a text corpus's train / validation / test streams).

Everything read from the folder is checked once, when it is opened (:class:`PreparedData`):
the structure of ``index.json`` (tokenizer, contigs, N runs, segments, counts), that every
token file lies inside the folder, and that every token array holds only ids the data may
hold (no [MASK], no [PAD], nothing outside the vocabulary). Every problem is one
:class:`InputFileError` naming the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path, PurePosixPath

import numpy as np

from dnadiff.errors import InputFileError
from dnadiff.io import read_utf8
from dnadiff.tokenizers import tokenizer_from_dict

SPLITS = ("train", "validation", "test")
#: how an error about a damaged prepared folder ends
AGAIN = "not written by `dnadiff prepare`, or damaged; prepare again"
#: the deepest nesting a valid index.json has (it has 4); deeper is refused before it is used
MAX_DEPTH = 16
#: token ids checked per step of the id scan (bounds the scan's temporary memory)
_CHUNK = 1 << 24


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value) -> bool:
    return _is_int(value) and value >= 0


def json_depth(obj, limit: int) -> bool:
    """Whether ``obj`` (parsed JSON) nests containers deeper than ``limit`` (iteratively, so a
    hostile file cannot exhaust the stack here)."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item))
    return False


def load_json_file(path, what: str, corrupt: str = "corrupt: not JSON", hint: str = ""):
    """Parse the JSON file ``path`` (``what`` names it in errors); invalid, non-UTF-8, too
    deeply nested (a ``RecursionError`` in the parser) or unreadable is one
    :class:`InputFileError` (``corrupt``: how invalid JSON is called; ``hint`` ends it)."""
    text = read_utf8(path, what, what)
    try:
        return json.loads(text)
    except RecursionError:
        raise InputFileError(path, f"{what} is nested too deeply to be read (containers "
                                   "inside containers thousands of levels deep)") from None
    except ValueError as exc:
        raise InputFileError(path, f"{corrupt} ({str(exc)[:160]}){hint}") from None


def tokenizer_problem(tok) -> str | None:
    """Why the tokenizer dict ``tok`` (of a checkpoint or of prepared data) is unusable, or
    ``None``: a list of token strings, mask and pad ids and generable ids inside it, an
    optional complement map."""
    if not isinstance(tok, dict):
        return "tokenizer is not a mapping"
    tokens = tok.get("tokens")
    if not (isinstance(tokens, list) and tokens and all(isinstance(t, str) for t in tokens)):
        return "tokenizer has no list of tokens"
    n = len(tokens)
    for key in ("mask_id", "pad_id"):
        if not (_is_int(tok.get(key)) and 0 <= tok[key] < n):
            return f"tokenizer {key!r} is {tok.get(key)!r}, not a token id below {n}"
    if tok.get("eos_id") is not None and not (_is_int(tok["eos_id"]) and 0 <= tok["eos_id"] < n):
        return f"tokenizer 'eos_id' is {tok['eos_id']!r}, not a token id below {n}"
    gen = tok.get("generable_ids")
    if not (isinstance(gen, list) and gen and all(_is_int(i) and 0 <= i < n for i in gen)):
        return f"tokenizer 'generable_ids' must be a non-empty list of token ids below {n}"
    if tok["mask_id"] in gen or tok["pad_id"] in gen:
        return "tokenizer 'generable_ids' holds the mask or pad id"
    comp = tok.get("complement")
    if comp is not None and not (isinstance(comp, list) and len(comp) == n and all(
            _is_int(i) and 0 <= i < n for i in comp)):
        return f"tokenizer 'complement' must map each of the {n} tokens to a token id"
    if not isinstance(tok.get("name"), str):
        return "tokenizer has no name"
    return None


def _pairs(value, length: int, what: str) -> str | None:
    """Why ``value`` is not a sorted list of disjoint [start, end) pairs inside [0, length]."""
    if not isinstance(value, list):
        return f"{what} is not a list of [start, end] pairs"
    last = 0
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and all(_is_int(x) for x in pair)):
            return f"{what} holds {type(pair).__name__} entries, not [start, end] pairs"
        a, b = pair
        if not last <= a < b <= length:
            return (f"{what} holds [{a}, {b}], not a sorted, non-overlapping run inside the "
                    f"contig's {length} tokens")
        last = b
    return None


def _contig_problem(c, folder: Path) -> str | None:
    """Why the contig entry ``c`` of index.json is unusable, or ``None``."""
    if not isinstance(c, dict):
        return "is not a mapping"
    if not isinstance(c.get("name"), str):
        return "has no 'name' (text)"
    if not _is_count(c.get("length")):
        return "has no 'length' (a non-negative integer)"
    file = c.get("file")
    if not isinstance(file, str) or not file:
        return "has no 'file' (the path of its token array inside the folder)"
    pure = PurePosixPath(file.replace("\\", "/"))
    if pure.is_absolute() or Path(file).is_absolute() or ".." in pure.parts:
        return (f"has 'file' {file!r}: an absolute path or one with '..'; a token array must "
                "lie inside the prepared folder")
    root = folder.resolve()
    target = (folder / file).resolve()
    if target != root and root not in target.parents:
        return (f"has 'file' {file!r}, which leads outside the prepared folder (a link?); a "
                "token array must lie inside it")
    runs = _pairs(c.get("n_runs"), c["length"], "'n_runs'")
    if runs:
        return runs
    segments = c.get("segments")
    if not isinstance(segments, list):
        return "has no 'segments' (a list)"
    for s in segments:
        if not (isinstance(s, dict) and s.get("split") in SPLITS and _is_int(s.get("start"))
                and _is_int(s.get("end")) and 0 <= s["start"] <= s["end"] <= c["length"]):
            return ("has a segment that is not {split: train/validation/test, start, end} "
                    f"inside its {c['length']} tokens")
    return None


def _per_split(value, check) -> bool:
    return isinstance(value, dict) and all(s in value and check(value[s]) for s in SPLITS)


def index_problem(index, folder: Path) -> str | None:
    """Why the parsed ``index.json`` of ``folder`` cannot be used, or ``None``."""
    if not isinstance(index, dict):
        return "is not a JSON object"
    if json_depth(index, MAX_DEPTH):
        return f"nests deeper than {MAX_DEPTH} levels"
    for key, kind in (("tokenizer", dict), ("contigs", list)):
        if key not in index:
            return f"has no {key!r} entry"
        if not isinstance(index[key], kind):
            return f"{key!r} is a {type(index[key]).__name__}, not a {kind.__name__}"
    problem = tokenizer_problem(index["tokenizer"])
    if problem:
        return problem
    tok = index["tokenizer"]
    n = len(tok["tokens"])
    modality = tok.get("modality", "dna")
    if modality not in ("dna", "text"):
        return f"tokenizer 'modality' is {modality!r}, not 'dna' or 'text'"
    if modality == "dna" and "N" not in tok["tokens"]:
        return "the DNA tokenizer has no token 'N'"
    if not index["contigs"]:
        return "'contigs' is empty"
    for i, c in enumerate(index["contigs"]):
        problem = _contig_problem(c, folder)
        if problem:
            name = c.get("name") if isinstance(c, dict) and isinstance(c.get("name"), str) \
                else None
            return f"contig {i}{f' ({name[:40]!r})' if name else ''} {problem}"
    counts = index.get("token_counts")
    if counts is not None and not _per_split(
            counts, lambda v: isinstance(v, list) and len(v) == n and all(map(_is_count, v))):
        return (f"'token_counts' must give a list of {n} counts (one per token) for each of "
                f"{', '.join(SPLITS)}")
    comp = index.get("composition")
    if counts is None and comp is None:
        return "has neither 'token_counts' nor 'composition'"
    if comp is not None and not _per_split(comp, lambda v: isinstance(v, dict) and all(
            isinstance(k, str) and _is_count(x) for k, x in v.items())):
        return f"'composition' must give base counts for each of {', '.join(SPLITS)}"
    for key in ("split_sizes", "characters"):
        if key in index and not (isinstance(index[key], dict) and all(
                _is_count(v) for v in index[key].values())):
            return f"{key!r} must map splits to non-negative integers"
    if "characters" in index and not _per_split(index.get("split_sizes"), _is_count):
        return "has 'characters' but no 'split_sizes' for each split"
    return None


class PreparedData:
    """A prepared data directory: ``index.json`` plus memory-mapped token arrays (a genome or a
    text corpus), checked when it is opened."""

    def __init__(self, path):
        self.path = Path(path)
        index_file = self.path / "index.json"
        if not index_file.exists():
            raise InputFileError(self.path, "not a prepared data directory (no index.json); "
                                            "run `dnadiff prepare` first")
        self.index = load_json_file(index_file, "index.json", "corrupt JSON",
                                    "; run `dnadiff prepare` again")
        problem = index_problem(self.index, self.path)
        if problem:
            raise InputFileError(index_file, f"{problem}: {AGAIN}")
        self.index_sha256 = hashlib.sha256(index_file.read_bytes()).hexdigest()
        self.contigs = self.index["contigs"]
        tk = self.index["tokenizer"]
        self.modality = tk.get("modality", "dna")
        # N (unknown base) is never a training target; text has no such token
        self.pad_id = tk["pad_id"]
        self.n_id = tk["tokens"].index("N") if self.modality == "dna" else None
        self._arrays: dict[int, np.ndarray] = {}
        for i in range(len(self.contigs)):
            self.tokens(i)  # every array checked now, in this process (not in a worker)

    def __getstate__(self):
        # a copy for a data-loader worker reopens the arrays (already checked) itself, and
        # rebuilds the tokenizer if it needs it
        state = {**self.__dict__, "_arrays": {}}
        state.pop("tokenizer", None)
        return state

    @functools.cached_property
    def tokenizer(self):
        """The tokenizer the data was prepared with (rebuilt from ``index.json`` on first use)."""
        try:
            return tokenizer_from_dict(self.index["tokenizer"])
        except Exception as exc:  # noqa: BLE001 - any broken entry is the file's problem
            raise InputFileError(self.path / "index.json",
                                 f"tokenizer cannot be rebuilt ({type(exc).__name__}: "
                                 f"{str(exc)[:160]}): {AGAIN}") from None

    def _allowed(self) -> np.ndarray:
        """Which ids a token array may hold: every token but [MASK] and [PAD]."""
        tk = self.index["tokenizer"]
        ok = np.ones(len(tk["tokens"]), dtype=bool)
        ok[[tk["mask_id"], tk["pad_id"]]] = False
        return ok

    def _check_ids(self, path: Path, arr: np.ndarray) -> None:
        """Every id of ``arr`` is one the data may hold, or one error naming the first one."""
        if arr.dtype.kind not in "iu":
            raise InputFileError(path, f"holds {arr.dtype} values, not integer token ids: "
                                       f"{AGAIN}")
        ok = self._allowed()
        tokens = self.index["tokenizer"]["tokens"]
        top = int(np.argmin(ok)) - 1 if not ok.all() else len(ok) - 1  # ids 0..top all allowed
        for a in range(0, arr.size, _CHUNK):
            chunk = arr[a:a + _CHUNK]
            if chunk.size == 0 or (int(chunk.min()) >= 0 and int(chunk.max()) <= top):
                continue
            ids = chunk.astype(np.int64)
            bad = (ids < 0) | (ids >= len(ok))
            bad[~bad] = ~ok[ids[~bad]]
            hits = np.flatnonzero(bad)
            if hits.size == 0:
                continue
            pos, value = a + int(hits[0]), int(ids[hits[0]])
            what = (f"the {tokens[value]} token" if 0 <= value < len(ok)
                    else f"outside the tokenizer's {len(ok)} tokens")
            raise InputFileError(path, f"token id {value} ({what}) at position {pos}: prepared "
                                       f"data holds only ids of real tokens; {AGAIN}")

    def tokens(self, i: int) -> np.ndarray:
        """Contig ``i``'s token ids, memory-mapped (checked on first read, then cached)."""
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
            if not getattr(self, "_checked", False):
                self._check_ids(path, arr)
            self._arrays[i] = arr
            if len(self._arrays) == len(self.contigs):
                self._checked = True
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
        """Count of every base (and N) in ``split``."""
        comp = self.index.get("composition")
        if comp is not None:
            return comp[split]
        counts = self.token_counts(split)  # index.json without it: from the token counts
        tk = self.index["tokenizer"]
        keep = set(tk["generable_ids"]) | ({self.n_id} if self.n_id is not None else set())
        return {t: int(counts[i]) for i, t in enumerate(tk["tokens"]) if i in keep}

    def token_counts(self, split: str) -> np.ndarray:
        """Count of every token id in ``split`` (vocabulary order)."""
        counts = self.index.get("token_counts")
        if counts is not None:
            return np.asarray(counts[split], dtype=np.int64)
        # prepared before token_counts existed (DNA): from the base composition
        tokens = self.index["tokenizer"]["tokens"]
        comp = self.composition(split)
        return np.array([comp.get(t, 0) for t in tokens], dtype=np.int64)

    def provenance(self) -> dict:
        """What a checkpoint records about the data it was trained on: the file it was prepared
        from, the digest of ``index.json``, the modality, the split sizes and the held-out
        contigs."""
        held = {s: sorted({c["name"] for c in self.contigs for seg in c["segments"]
                           if seg["split"] == s}) for s in ("validation", "test")}
        sizes = {s: sum(b - a for _, a, b in self.segments(s)) for s in SPLITS}
        source = self.index.get("source")
        return {"source": source if isinstance(source, str) else None,
                "index_sha256": self.index_sha256, "modality": self.modality,
                "split_sizes": sizes, "held_out": held}
