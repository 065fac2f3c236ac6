"""FASTA -> tokens on one core (MB of FASTA/s): our reader and the whole of ``dnadiff
prepare`` next to the naive way (a pyfaidx fetch of each window and a per-character encode, as
the HyenaDNA/Caduceus hg38 loaders read a genome), checking that both give the same tokens."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dnadiff.data.fasta import open_binary, read_sequences
from dnadiff.data.prepare import prepare_genome
from dnadiff.perf.common import best_of, machine_name, peak_memory


def synthetic_fasta(path, megabases: float, seed: int = 0, line_width: int = 60) -> Path:
    """A FASTA of random bases for size-controlled runs: records of up to 1 Mb, soft-masked
    stretches (lower case) and N runs, ``line_width`` bases a line."""
    rng = np.random.default_rng(seed)
    total = max(1, int(megabases * 1e6))
    letters = np.frombuffer(b"ACGTacgtN", dtype=np.uint8)
    path = Path(path)
    with open(path, "wb") as fh:
        done, rec = 0, 0
        while done < total:
            n = min(1_000_000, total - done)
            seq = letters[rng.integers(0, 4, n)]
            for start in rng.integers(0, n, max(1, n // 20_000)):  # soft-masked repeats
                seq[start:start + 300] = np.char.lower(seq[start:start + 300].view("S1")
                                                       ).view(np.uint8)
            seq[: min(n, 1000) if rec % 3 == 0 else 0] = ord("N")  # a telomere-like N run
            body = seq.tobytes()
            fh.write(f">seq{rec} synthetic\n".encode())
            fh.write(b"\n".join(body[i:i + line_width] for i in range(0, n, line_width)))
            fh.write(b"\n")
            done, rec = done + n, rec + 1
    return path


def naive_tokenize(fasta, window: int, limit_bases: int | None = None):
    """The way the HyenaDNA/Caduceus hg38 loaders read a genome: a pyfaidx fetch of each
    window, upper-cased, then one dictionary lookup per character. Yields (record, start,
    int64 ids) of the non-overlapping windows of every record, up to ``limit_bases``."""
    from pyfaidx import Fasta  # the baseline's own library (0.1 s to import), only here

    vocab = {b: i for i, b in enumerate("ACGTN")}
    fa = Fasta(str(fasta), sequence_always_upper=True, rebuild=False)
    seen = 0
    try:
        for name in fa.keys():  # noqa: SIM118 - iterating a Fasta yields records
            record = fa[name]
            for start in range(0, len(record), window):
                seq = str(record[start:start + window])
                ids = np.array([vocab.get(ch, 4) for ch in seq], dtype=np.int64)
                yield name, start, ids
                seen += ids.size
                if limit_bases is not None and seen >= limit_bases:
                    return
    finally:
        fa.close()


def bench_tokenize(fasta=None, megabases: float = 8.0, reps: int = 3, window: int = 1024,
                   baseline_megabases: float | None = 8.0, seed: int = 0) -> dict:
    """FASTA -> tokens on one core, from an uncompressed file (a gzip input is decompressed to
    a scratch copy first; a missing ``fasta`` is made by :func:`synthetic_fasta`):

    - ``reader``: ``read_sequences`` (parse, validate, encode every record to uint8 ids);
    - ``prepare``: the whole of ``dnadiff prepare`` (plus N runs, base counts, one .npy per
      contig, index.json);
    - ``naive``: :func:`naive_tokenize` over the first ``baseline_megabases`` (it is slow;
      None: the whole genome), its .fai index built beforehand and not timed.
    Rates are in MB of FASTA per second (the file's bytes, line breaks and headers included)
    and in million bases per second; the best of ``reps`` runs (the naive one runs once).
    """
    torch.set_num_threads(1)
    logging.getLogger("dnadiff.data.prepare").setLevel(logging.WARNING)  # one line per rep
    with tempfile.TemporaryDirectory(prefix="dnadiff-bench-") as tmp:
        tmp = Path(tmp)
        if fasta is None:
            path = synthetic_fasta(tmp / "genome.fa", megabases, seed)
            source = f"synthetic, {megabases:g} Mb (seed {seed})"
        else:
            fasta = Path(fasta)
            path = tmp / "genome.fa"
            with open_binary(fasta) as fin, open(path, "wb") as fout:  # plain copy, not timed
                shutil.copyfileobj(fin, fout, 1 << 22)
            source = str(fasta)
        size = path.stat().st_size
        bases = contigs = 0
        ours = {}  # the ids of the records the naive reader will cover, to compare
        limit = None if baseline_megabases is None else int(baseline_megabases * 1e6)
        for name, _raw, ids in read_sequences(path):  # also warms the page cache
            if limit is None or bases < limit:
                ours[name] = ids
            bases, contigs = bases + ids.size, contigs + 1

        def read_all():
            for _ in read_sequences(path):
                pass

        t_read = best_of(read_all, reps)

        def prepare():
            out = tmp / "prepared"
            shutil.rmtree(out, ignore_errors=True)
            prepare_genome(path, out)

        t_prep = best_of(prepare, reps)
        out = {"figure": "tokenize", "source": source, "fasta_mb": round(size / 1e6, 3),
               "bases": int(bases), "contigs": contigs, "reps": reps, "threads": 1,
               "machine": machine_name(),
               "reader_mb_per_s": round(size / t_read / 1e6, 1),
               "reader_mbases_per_s": round(bases / t_read / 1e6, 1),
               "prepare_mb_per_s": round(size / t_prep / 1e6, 1),
               "prepare_mbases_per_s": round(bases / t_prep / 1e6, 1)}
        if baseline_megabases != 0:
            from pyfaidx import Faidx  # as above

            Faidx(str(path)).close()  # the .fai index, as those loaders ship it
            t0 = time.perf_counter()
            naive_bases, same = 0, True
            for name, start, ids in naive_tokenize(path, window, limit):
                naive_bases += ids.size
                same = same and np.array_equal(ids, ours[name][start:start + window])
            t_naive = time.perf_counter() - t0
            naive_rate = naive_bases / t_naive / 1e6
            out.update({"naive_window": window, "naive_bases": int(naive_bases),
                        "naive_mbases_per_s": round(naive_rate, 2),
                        "reader_speedup_vs_naive": round(bases / t_read / 1e6 / naive_rate, 1),
                        "identical_tokens": bool(same)})
    out.update(peak_memory())
    return out
