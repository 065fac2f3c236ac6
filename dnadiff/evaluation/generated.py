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
from dnadiff.errors import DnadiffError, InputFileError

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




# -- the full scoring of generated sequences next to baselines ----------------------------------
SCORE_SETS_DOC = {
    "mdlm": "the samples being scored",
    "real_heldout": "real windows of the validation split (the floor: a perfect generator)",
    "iid": "i.i.d. bases with the training split's composition",
    "markov": "a k-th order Markov chain fitted on the training split",
}


def _windows(genome, split: str, length: int, n: int, seed: int) -> list[np.ndarray]:
    ds = RandomWindows(genome, split, length, n, seed=seed)
    return [ds[i]["tokens"].numpy().astype(np.int64) for i in range(n)]


def _chunks(seqs, length: int) -> list[np.ndarray]:
    """Non-overlapping pieces of ``length`` (an embedder's input length) of every sequence."""
    out = []
    for s in seqs:
        out += [s[i:i + length] for i in range(0, len(s) - length + 1, length)]
    return out


def score_generated(samples_fa, data_dir, eval_cfg: dict, embedder=None) -> dict:
    """Score the samples and the baselines the same way.

    Every set has as many sequences as there are samples, of the samples' length. Figures:
    k-mer JS (k = 1..kmer_max_k) to the test split's spectrum; GC, CpG observed/expected and
    homopolymer rates; a discriminator's cross-validated AUROC against real test windows
    (0.5 = indistinguishable); memorization against the training split (highest ungapped
    identity of each sequence to any training stretch, both strands, and the exact-copy rate);
    and, with an ``embedder`` (a classifier trained on real data, see ``dnadiff.downstream``),
    the Frechet distance between its embeddings of the set and of real test windows, cut to the
    classifier's input length.
    """
    from dnadiff.evaluation import sequences as sq

    names, gen = read_samples(samples_fa)
    for name, s in zip(names, gen):
        if (s >= ACGT).any():
            raise InputFileError(samples_fa, f"record {name!r} contains non-ACGT bases")
    lengths = {len(s) for s in gen}
    if len(lengths) != 1:
        raise InputFileError(samples_fa, f"samples have {len(lengths)} different lengths; "
                                         "scoring needs one")
    length, n, seed = lengths.pop(), len(gen), eval_cfg["seed"]
    genome = PreparedGenome(data_dir)
    test = [genome.tokens(ci)[a:b] for ci, a, b in genome.segments("test")]
    train = [genome.tokens(ci)[a:b] for ci, a, b in genome.segments("train")]
    max_k = eval_cfg["kmer_max_k"]
    ref = {k: kmer_counts(test, k) for k in range(1, max_k + 1)}
    order = eval_cfg["markov_order"]
    chain = sq.fit_markov(train, order)
    sets = {
        "mdlm": gen,
        "real_heldout": _windows(genome, "validation", length, n, seed),
        "iid": sq.iid_sample(genome.composition("train"), n, length, seed),
        f"markov{order}": chain.sample(n, length, seed),
    }
    real_test = _windows(genome, "test", length, n, seed + 1)
    emb_real = None
    if embedder is not None:
        from dnadiff.downstream import embed

        model, meta = embedder
        if meta["length"] is None or meta["length"] > length:
            raise DnadiffError(f"the embedder classifier (task {meta['task']!r}) needs sequences "
                               f"of one length no longer than the samples ({length}); its task "
                               f"has length {meta['length']}")
        emb_len = int(meta["length"])
        emb_real = embed(model, _chunks(real_test, emb_len))
    out = {"num_samples": n, "length": length, "markov_order": order, "sets": {},
           "set_descriptions": SCORE_SETS_DOC}
    for name, seqs in sets.items():
        res = sq.score_set(seqs, ref, max_k)
        res["kmer_js"] = {int(k): float(v) for k, v in res["kmer_js"].items()}
        folds = min(5, n)
        res["discriminator"] = (sq.discriminator_auroc(real_test, seqs, eval_cfg["discriminator_k"],
                                                       folds, seed) if n >= 4 else None)
        mem = sq.memorization(seqs, train, seed_k=eval_cfg["memorization_seed_k"])
        res["memorization"] = {k: v for k, v in mem.items() if not k.startswith("per_sample")}
        res["memorization"]["max_identity"] = float(max(mem["per_sample_identity"]))
        if emb_real is not None:
            res["frechet_distance"] = sq.frechet_distance(embed(model, _chunks(seqs, emb_len)),
                                                          emb_real)
        out["sets"][name] = res
    return out


def score_rows(res: dict) -> list[dict]:
    """One table row per scored set."""
    rows = []
    for name, r in res["sets"].items():
        row = {"set": name, "n": res["num_samples"], "length": res["length"]}
        row.update({f"js_k{k}": v for k, v in sorted(r["kmer_js"].items())})
        row.update({k: r[k] for k in ("gc_mean", "gc_sd", "cpg_oe", "tandem_repeat_frac")
                    if k in r})
        row.update({k: v for k, v in r.items() if k.startswith("runs_ge") or k == "longest"})
        d = r.get("discriminator")
        row["discriminator_auroc"] = d["auroc_mean"] if d else float("nan")
        row["discriminator_auroc_sd"] = d["auroc_sd"] if d else float("nan")
        m = r["memorization"]
        row["nn_identity_seeded_mean"] = m["mean_max_identity_seeded"]
        row["nn_identity_max"] = m["max_identity"]
        row["exact_copy_rate"] = m["exact_copy_rate"]
        row["frac_identity_ge_0.9"] = m["frac_identity_ge_0.9"]
        row["frac_no_seed_hit"] = m.get("frac_no_seed_hit", float("nan"))
        row["frechet_distance"] = r.get("frechet_distance", float("nan"))
        rows.append(row)
    return rows
