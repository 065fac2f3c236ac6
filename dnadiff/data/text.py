"""``dnadiff prepare --text``: a plain-text corpus -> tokenizer + packed token arrays.

The corpus (UTF-8, plain or gzip) is cut into documents (``text.document_separator``), the
documents are assigned in order to train / validation / test (the last ``test_fraction`` of the
characters is test, the ``validation_fraction`` before it validation: contiguous blocks, so no
passage leaks between splits), the tokenizer (``bpe`` or ``char``) is trained on the train
documents, and each split is packed into one token stream with [EOS] after every document.

The output directory has the genome layout (``dnadiff.data.prepare``), one "contig" per split,
so training windows, evaluation tiles and every verb downstream work unchanged::

    <outdir>/index.json          tokenizer (with its vocabulary), splits, token counts
    <outdir>/tokens/<i>.npy      the packed token stream of one split
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import zlib
from pathlib import Path

import numpy as np

from dnadiff.data.fasta import open_binary
from dnadiff.data.prepare import SPLITS
from dnadiff.data.reference import download, is_url
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.io import atomic_open, atomic_path, decode_text
from dnadiff.tokenizers import TEXT_TOKENIZERS

log = logging.getLogger(__name__)
SEPARATORS = {
    "blank_line": re.compile(r"\n(?:[ \t]*\n)+"),  # paragraphs (one or more blank lines)
    "line": re.compile(r"\n"),
}


def read_corpus(path) -> str:
    """The text of ``path`` (UTF-8, plain or gzip), with Windows/Mac line ends made '\\n'."""
    path = Path(path)
    with open_binary(path) as fh:
        try:
            raw = fh.read()
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise InputFileError(path, f"cannot be read: corrupt or truncated gzip ({exc})"
                                 ) from None
    if b"\x00" in raw[:65536]:
        raise InputFileError(path, "looks binary (NUL bytes), expected a UTF-8 text corpus")
    text = decode_text(path, raw, "utf-8", "not UTF-8 text (byte {byte:#x} at offset {offset})")
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InputFileError(path, "is empty (no text)")
    return text


def split_documents(text: str, separator: str) -> list[str]:
    """Documents of ``text``: paragraphs (``blank_line``), lines (``line``) or the whole text
    (``none``); surrounding blank lines are dropped, inner text is kept as is."""
    if separator == "none":
        parts = [text]
    else:
        parts = SEPARATORS[separator].split(text)
    return [p.strip("\n") for p in parts if p.strip()]


def assign_splits(docs: list[str], validation_fraction: float, test_fraction: float
                  ) -> dict[str, list[str]]:
    """Contiguous blocks by characters: train first, then validation, then test. A single
    document is cut at line boundaries so that each split gets its share."""
    if len(docs) < 3:
        return _cut_lines(docs, validation_fraction, test_fraction)
    sizes = np.array([len(d) + 1 for d in docs], dtype=np.float64)
    ends = np.cumsum(sizes) / sizes.sum()  # fraction of the corpus up to each document's end
    train_end = 1.0 - validation_fraction - test_fraction
    val_end = 1.0 - test_fraction
    split_of = np.where(ends <= train_end + 1e-12, 0, np.where(ends <= val_end + 1e-12, 1, 2))
    # every split gets at least one document
    split_of[-1] = 2
    if not (split_of == 1).any():
        split_of[np.flatnonzero(split_of == 2)[0] - 1] = 1
    if not (split_of == 0).any():
        raise DnadiffError("the train split is empty: lower text.validation_fraction / "
                           "text.test_fraction or give a larger corpus")
    return {s: [d for d, k in zip(docs, split_of) if k == i] for i, s in enumerate(SPLITS)}


def _cut_lines(docs: list[str], validation_fraction: float, test_fraction: float
               ) -> dict[str, list[str]]:
    """Splits of fewer than 3 documents: cut at line boundaries by characters; a document cut
    in two gives a piece to each split, and document boundaries are kept."""
    lines = [(line, k) for k, d in enumerate(docs) for line in d.split("\n")]
    if len(lines) < 3:
        raise DnadiffError("the corpus has fewer than 3 documents or lines; it cannot be "
                           "split into train, validation and test")
    cum = np.cumsum([len(x) + 1 for x, _ in lines]) / sum(len(x) + 1 for x, _ in lines)
    a = int(np.searchsorted(cum, 1.0 - validation_fraction - test_fraction - 1e-9)) + 1
    b = int(np.searchsorted(cum, 1.0 - test_fraction - 1e-9)) + 1
    a = min(max(a, 1), len(lines) - 2)
    b = min(max(b, a + 1), len(lines) - 1)
    out = {}
    for split, part in zip(SPLITS, (lines[:a], lines[a:b], lines[b:])):
        pieces: list[list[str]] = []
        last = None
        for line, k in part:
            if k != last:
                pieces.append([])
                last = k
            pieces[-1].append(line)
        out[split] = ["\n".join(p) for p in pieces]
    return out


def prepare_text(corpus, outdir, text_cfg: dict) -> dict:
    """Tokenize ``corpus`` into ``outdir`` (written atomically as a whole directory)."""
    corpus = Path(corpus)
    docs = split_documents(read_corpus(corpus), text_cfg["document_separator"])
    if not docs:
        raise InputFileError(corpus, "has no documents")
    try:
        by_split = assign_splits(docs, text_cfg["validation_fraction"],
                                 text_cfg["test_fraction"])
    except DnadiffError as exc:
        raise InputFileError(corpus, str(exc)) from None
    kind = TEXT_TOKENIZERS[text_cfg["tokenizer"]]
    log.info("training the %s tokenizer on %d train documents", kind.name,
             len(by_split["train"]))
    if kind.name == "char":
        tok = kind.train(docs)  # every character of the corpus is in the vocabulary
    else:
        tok = kind.train(by_split["train"], vocab_size=text_cfg["vocab_size"],
                         min_frequency=text_cfg["min_frequency"])
    outdir = Path(outdir)
    contigs, counts, chars, n_docs = [], {}, {}, {}
    with atomic_path(outdir, is_dir=True, kind="prepared data") as tmp:
        (tmp / "tokens").mkdir()
        for i, split in enumerate(SPLITS):
            pieces = (tok.encode_batch(by_split[split]) if hasattr(tok, "encode_batch")
                      else [tok.encode(d) for d in by_split[split]])
            eos = np.array([tok.eos_id], dtype=tok.dtype)
            ids = np.concatenate([x for p in pieces for x in (p, eos)]).astype(tok.dtype)
            fname = f"tokens/{i:05d}.npy"
            np.save(tmp / fname, ids)
            contigs.append({"name": split, "length": int(ids.size), "file": fname,
                            "n_count": 0, "n_runs": [],
                            "segments": [{"split": split, "start": 0, "end": int(ids.size)}]})
            counts[split] = np.bincount(ids, minlength=tok.vocab_size).tolist()
            # characters, with one for each document end: bits per character = total bits / this
            chars[split] = int(sum(len(d) + 1 for d in by_split[split]))
            n_docs[split] = len(by_split[split])
        index = {
            "format": 1,
            "source": str(corpus),
            "tokenizer": tok.to_dict(),
            "contigs": contigs,
            "split_sizes": {c["name"]: c["length"] for c in contigs},
            "token_counts": counts,
            "characters": chars,
            "documents": n_docs,
            "document_separator": text_cfg["document_separator"],
        }
        (tmp / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    log.info("prepared text: %d documents, tokens per split %s, vocabulary %d",
             len(docs), index["split_sizes"], tok.vocab_size)
    return index


def fetch_text(source: str, out, cache_dir) -> dict:
    """Get a text corpus (a path or an http/https/ftp URL; UTF-8, plain or gzip) and write it
    to ``out`` as plain UTF-8 text, checked as ``prepare`` will read it."""
    if is_url(source):
        cache = Path(cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(source.encode()).hexdigest()[:16]
        path = cache / f"text-{key}-{Path(source.split('?')[0]).name or 'corpus'}"
        if not path.exists():
            download(source, path)
    else:
        path = Path(source)
    text = read_corpus(path)
    with atomic_open(out, "w", encoding="utf-8") as fh:
        fh.write(text)
    return {"source": source, "out": str(out), "characters": len(text)}
