"""Statistics of generated DNA: k-mer spectrum Jensen-Shannon divergence (k = 1..K) to held-out
real sequence, next to the real-vs-real floor and an i.i.d. base-composition baseline, and GC
content.

The *reference* spectrum is the whole held-out test split. The *floor* is the divergence of a
set of real held-out windows (validation split; same number and length as the samples) from that
reference: what a perfect generator would score at this sample size.
"""

from __future__ import annotations


import numpy as np

from dnadiff.data.fasta import read_sequences
from dnadiff.data.windows import PreparedGenome, RandomWindows
from dnadiff.errors import InputFileError

ACGT = 4  # ids 0..3 are A, C, G, T in the DNA tokenizer


def kmer_counts(seqs, k: int, chunk: int = 1 << 22) -> np.ndarray:
    """Counts of all 4^k k-mers over ``seqs`` (arrays of ids); k-mers touching N are skipped.

    Long sequences (whole chromosomes) are read in chunks of ``chunk`` positions that overlap
    by k - 1, so memory stays bounded and every k-mer is counted exactly once.
    """
    counts = np.zeros(ACGT ** k, dtype=np.int64)
    for s in seqs:
        n = len(s)
        for start in range(0, max(n - k + 1, 0), chunk):
            part = np.asarray(s[start: start + chunk + k - 1], dtype=np.int64)
            m = part.size - k + 1
            valid = part < ACGT
            code = np.zeros(m, dtype=np.int64)
            ok = np.ones(m, dtype=bool)
            for j in range(k):
                code = code * ACGT + np.where(valid[j:j + m], part[j:j + m], 0)
                ok &= valid[j:j + m]
            counts += np.bincount(code[ok], minlength=ACGT ** k)
    return counts


def js_divergence(c1, c2) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint) of two count vectors."""
    p = np.asarray(c1, np.float64)
    q = np.asarray(c2, np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / b[nz])).sum())

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def gc_content(seq) -> float:
    s = np.asarray(seq)
    acgt = s[s < ACGT]
    return float(np.isin(acgt, (1, 2)).mean()) if acgt.size else float("nan")


def read_samples(path) -> tuple[list[str], list[np.ndarray]]:
    names, seqs = [], []
    for name, _raw, ids in read_sequences(path):
        names.append(name)
        seqs.append(ids.astype(np.int64))
    return names, seqs


def evaluate_samples(samples_fa, data_dir, max_k: int = 6, seed: int = 0) -> dict:
    names, gen = read_samples(samples_fa)
    lengths = {len(s) for s in gen}
    for name, s in zip(names, gen):
        if (s >= ACGT).any():
            raise InputFileError(samples_fa, f"record {name!r} contains non-ACGT bases")
    genome = PreparedGenome(data_dir)
    test = [genome.tokens(ci)[a:b] for ci, a, b in genome.segments("test")]  # memory-mapped
    length = max(lengths)
    floor_ds = RandomWindows(genome, "validation", length, len(gen), seed=seed)
    floor = [floor_ds[i]["tokens"].numpy() for i in range(len(gen))]
    comp = genome.composition("train")
    p = np.array([comp[b] for b in "ACGT"], np.float64)
    rng = np.random.default_rng(seed)
    iid = [rng.choice(ACGT, size=length, p=p / p.sum()) for _ in range(len(gen))]

    rows = []
    for k in range(1, max_k + 1):
        ref = kmer_counts(test, k)
        rows.append({"k": k,
                     "js_generated": js_divergence(kmer_counts(gen, k), ref),
                     "js_real_floor": js_divergence(kmer_counts(floor, k), ref),
                     "js_iid_baseline": js_divergence(kmer_counts(iid, k), ref)})
    gc_gen = np.array([gc_content(s) for s in gen])
    gc_real = np.array([gc_content(s) for s in floor])
    test_counts = kmer_counts(test, 1)
    summary = {
        "num_samples": len(gen), "sample_lengths": sorted(lengths),
        "gc_generated_mean": float(gc_gen.mean()), "gc_generated_sd": float(gc_gen.std()),
        "gc_real_windows_mean": float(gc_real.mean()), "gc_real_windows_sd": float(gc_real.std()),
        "gc_test_split": float(test_counts[1:3].sum() / test_counts.sum()),
        "kmer_js": rows,
    }
    return summary | {"_gc_generated": gc_gen, "_gc_real": gc_real}


