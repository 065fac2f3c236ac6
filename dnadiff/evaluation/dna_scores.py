"""The one scorer of generated DNA: every verb that scores DNA samples measures them here,
against the same real DNA, with the same functions.

- ``evaluate samples`` (:func:`evaluate_samples`): the k-mer JS table of the samples, of a real
  floor and of an i.i.d. baseline, and GC content;
- ``evaluate scores`` (:func:`score_generated`, :func:`score_rows`): the samples next to real,
  i.i.d. and Markov sets, each scored alike (k-mer JS, composition, discriminator AUROC,
  memorization and, with an embedder, Frechet distance);
- ``probe trap`` (:func:`trap_scorer`): k-mer JS, GC, coding fraction, long open frames and
  discriminator AUROC of the sets the marginal trap samples.

The real DNA (:class:`HeldOut`): the *reference* spectrum is the whole held-out test split. The
*floor* is a set of real held-out windows (validation split; as many and as long as the
samples): what a perfect generator would score at this sample size. Real *test* windows (seed
+ 1) are the other class of the discriminator and of the Frechet distance.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from dnadiff.data.fasta import read_sequences
from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import RandomWindows
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.evaluation.annotated import class_windows
from dnadiff.evaluation.baselines import fit_markov, iid_sample
from dnadiff.evaluation.composition import (
    cpg_observed_expected,
    gc_content,
    gc_fraction,
    homopolymer_stats,
    tandem_repeat_fraction,
)
from dnadiff.evaluation.genes import biology_scores, two_sample_distance
from dnadiff.evaluation.kmers import kmer_spectra, spectrum_js
from dnadiff.evaluation.likelihood import ARScorer
from dnadiff.evaluation.memorization import memorization
from dnadiff.evaluation.two_sample import discriminator_auroc, frechet_distance
from dnadiff.models.classifier import embed
from dnadiff.tokenizers import N_BASES

SCORE_SETS_DOC = {
    "mdlm": "the samples being scored",
    "real_heldout": "real windows of the validation split (the floor: a perfect generator)",
    "iid": "i.i.d. bases with the training split's composition",
    "markov": "a k-th order Markov chain fitted on the training split",
    "real_coding": "real test windows >= 90% inside annotated genes (CDS where annotated)",
    "real_intergenic": "real test windows overlapping no annotated feature",
    "real_promoter": "the real test windows that end where a gene starts (on its strand)",
}

#: the gene-level columns of every set (``genes.biology_scores``)
BIOLOGY_COLUMNS = ("coding_fraction", "coding_fraction_se", "genes_per_kb", "gene_score_mean",
                   "orf_open_mean", "orf_open_mean_se", "orf_open_ge300", "orf_open_ge300_se",
                   "orf_open_ge600", "orf_open_ge600_se", "orf_atg_ge300", "orf_atg_ge300_se",
                   "period3_excess", "period3_excess_se", "gc3", "gc3_se")


# -- the samples and the real DNA -------------------------------------------------------------
def read_samples(path) -> tuple[list[str], list[np.ndarray]]:
    """Names and token ids (int64) of the records of a FASTA file."""
    names, seqs = [], []
    for name, _raw, ids in read_sequences(path):
        names.append(name)
        seqs.append(ids.astype(np.int64))
    return names, seqs


def _check_bases(path, names, seqs) -> None:
    for name, s in zip(names, seqs):
        if (s >= N_BASES).any():
            raise InputFileError(path, f"record {name!r} contains non-ACGT bases")


def real_windows(genome: PreparedData, split: str, length: int, n: int,
                 seed: int) -> list[np.ndarray]:
    """``n`` random windows (int64) of ``length`` from ``split``, drawn with ``seed``."""
    ds = RandomWindows(genome, split, length, n, seed=seed)
    return [ds[i]["tokens"].numpy().astype(np.int64) for i in range(n)]


class HeldOut:
    """The real DNA that sets of ``n`` generated sequences of ``length`` are scored against:
    the test split's k-mer spectra (k = 1..max_k), the floor and the real test windows."""

    def __init__(self, genome: PreparedData, length: int, n: int, max_k: int, seed: int):
        self.genome, self.length, self.n, self.seed = genome, length, n, seed
        self.reference = kmer_spectra(genome.split_arrays("test"), max_k)

    @cached_property
    def floor(self) -> list[np.ndarray]:
        """Real validation windows, as many and as long as the samples (``seed``)."""
        return real_windows(self.genome, "validation", self.length, self.n, self.seed)

    @cached_property
    def real_test(self) -> list[np.ndarray]:
        """Real test windows, as many and as long as the samples (``seed + 1``)."""
        return real_windows(self.genome, "test", self.length, self.n, self.seed + 1)

    def kmer_js(self, seqs) -> dict[int, float]:
        """JS divergence (bits) of the set's k-mer spectrum to the test split's, per k."""
        return spectrum_js(seqs, self.reference)

    def discriminator(self, seqs, k: int) -> dict | None:
        """``discriminator_auroc`` of the set against the real test windows (k-mers 1..k,
        min(5, n) folds); ``None`` for fewer than 4 sequences."""
        n = len(seqs)
        if n < 4:
            return None
        return discriminator_auroc(self.real_test, seqs, k, min(5, n), self.seed)


def composition(seqs) -> dict:
    """``gc_mean``/``gc_sd``: mean and SD (ddof 0) over sequences of the per-sequence GC
    fraction; ``cpg_oe``: pooled CpG observed/expected; ``tandem_repeat_frac``: fraction of
    bases in short tandem repeats; plus every key of ``homopolymer_stats``."""
    gc = np.array([gc_content(s) for s in seqs], dtype=np.float64)
    gc = gc[~np.isnan(gc)]
    return {"gc_mean": float(gc.mean()) if gc.size else float("nan"),
            "gc_sd": float(gc.std()) if gc.size else float("nan"),
            "cpg_oe": cpg_observed_expected(seqs),
            "tandem_repeat_frac": tandem_repeat_fraction(seqs),
            **homopolymer_stats(seqs)}


#: the measures of one set of sequences, one line each: ``fn(seqs) -> {column: value}``. Every
#: column goes into the set's JSON entry, its row of the sample table and the report; a new
#: measure is a function in the evaluation module of its kind and a line here.
SET_MEASURES = {
    "composition": composition,
    "genes": biology_scores,  # open frames, gene calls, codon structure (with errors)
}


def score_set(seqs, reference_counts: dict[int, np.ndarray], max_k: int) -> dict:
    """Scores of one set of sequences: ``kmer_js`` ({k: Jensen-Shannon divergence in bits of
    the set's k-mer spectrum to ``reference_counts[k]``} for k = 1..max_k, counts as from
    ``kmer_counts``) and every column of every measure of :data:`SET_MEASURES`. ``max_k``: the
    config's ``evaluate.kmer_max_k``."""
    seqs = list(seqs)
    out = {"kmer_js": spectrum_js(seqs, {k: reference_counts[k] for k in range(1, max_k + 1)})}
    for measure in SET_MEASURES.values():
        out.update(measure(seqs))
    return out


# -- evaluate samples -------------------------------------------------------------------------
def evaluate_samples(samples_fa, data_dir, max_k: int, seed: int = 0) -> dict:
    """k-mer JS divergence (k = 1..max_k) to the test split of the samples, of the floor and of
    an i.i.d. baseline (training composition), and GC content of samples and floor (the
    per-sequence arrays under ``_gc_generated`` and ``_gc_real``, for the plot)."""
    names, gen = read_samples(samples_fa)
    lengths = {len(s) for s in gen}
    _check_bases(samples_fa, names, gen)
    genome = PreparedData(data_dir)
    held = HeldOut(genome, max(lengths), len(gen), max_k, seed)
    iid = iid_sample(genome.composition("train"), len(gen), held.length, seed)
    js = {key: held.kmer_js(seqs) for key, seqs in
          (("js_generated", gen), ("js_real_floor", held.floor), ("js_iid_baseline", iid))}
    rows = [{"k": k, **{key: v[k] for key, v in js.items()}} for k in held.reference]
    gc_gen = np.array([gc_content(s) for s in gen])
    gc_real = np.array([gc_content(s) for s in held.floor])
    summary = {
        "num_samples": len(gen), "sample_lengths": sorted(lengths),
        "gc_generated_mean": float(gc_gen.mean()), "gc_generated_sd": float(gc_gen.std()),
        "gc_real_windows_mean": float(gc_real.mean()), "gc_real_windows_sd": float(gc_real.std()),
        "gc_test_split": gc_fraction(held.reference[1]),
        "kmer_js": rows,
    }
    return summary | {"_gc_generated": gc_gen, "_gc_real": gc_real}


# -- evaluate scores --------------------------------------------------------------------------
def _chunks(seqs, length: int) -> list[np.ndarray]:
    """Non-overlapping pieces of ``length`` (an embedder's input length) of every sequence."""
    out = []
    for s in seqs:
        out += [s[i:i + length] for i in range(0, len(s) - length + 1, length)]
    return out


def score_generated(samples_fa, data_dir, eval_cfg: dict, embedder=None,
                    annotation=None) -> dict:
    """Score the samples and the baselines the same way.

    Every set has as many sequences as there are samples, of the samples' length. Figures:
    k-mer JS (k = 1..kmer_max_k) to the test split's spectrum; GC, CpG observed/expected and
    homopolymer rates; a discriminator's cross-validated AUROC against real test windows
    (0.5 = indistinguishable); memorization against the training split (highest ungapped
    identity of each sequence to any training stretch, both strands, and the exact-copy rate);
    and, with an ``embedder`` (a classifier trained on real data and its metadata, as from
    ``dnadiff.checkpoint.load_classifier``), the Frechet distance between its embeddings of the
    set and of real test windows, cut to the classifier's input length. Gene-level figures
    (open frames, pyrodigal gene calls, codon periodicity) with the distance of each set's
    longest-open-frame distribution to the real floor's; with an ``annotation`` (GFF3 or genes
    TSV of the genome), real test windows per class (coding, intergenic, promoter) are scored
    alike, as further reference rows.
    """
    names, gen = read_samples(samples_fa)
    _check_bases(samples_fa, names, gen)
    lengths = {len(s) for s in gen}
    if len(lengths) != 1:
        raise InputFileError(samples_fa, f"samples have {len(lengths)} different lengths; "
                                         "scoring needs one")
    length, n, seed = lengths.pop(), len(gen), eval_cfg["seed"]
    genome = PreparedData(data_dir)
    held = HeldOut(genome, length, n, eval_cfg["kmer_max_k"], seed)
    train = genome.split_arrays("train")
    order = eval_cfg["markov_order"]
    chain = fit_markov(train, order)
    sets = {
        "mdlm": gen,
        "real_heldout": held.floor,
        "iid": iid_sample(genome.composition("train"), n, length, seed),
        f"markov{order}": chain.sample(n, length, seed),
    }
    if annotation is not None:
        for cls, windows in class_windows(genome, annotation, "test", length, n,
                                          seed + 2).items():
            if windows:
                sets[f"real_{cls}"] = windows
    emb_real = None
    if embedder is not None:
        model, meta = embedder
        if meta["length"] is None or meta["length"] > length:
            raise DnadiffError(f"the embedder classifier (task {meta['task']!r}) needs sequences "
                               f"of one length no longer than the samples ({length}); its task "
                               f"has length {meta['length']}")
        emb_len = int(meta["length"])
        emb_real = embed(model, _chunks(held.real_test, emb_len))
    out = {"num_samples": n, "length": length, "markov_order": order, "sets": {},
           "set_descriptions": SCORE_SETS_DOC}
    for name, seqs in sets.items():
        res = score_set(seqs, held.reference, eval_cfg["kmer_max_k"])
        res["kmer_js"] = {int(k): float(v) for k, v in res["kmer_js"].items()}
        res["discriminator"] = held.discriminator(seqs, eval_cfg["discriminator_k"])
        res["orf_vs_real"] = two_sample_distance(seqs, held.floor)
        mem = memorization(seqs, train, seed_k=eval_cfg["memorization_seed_k"])
        res["memorization"] = {k: v for k, v in mem.items() if not k.startswith("per_sample")}
        res["memorization"]["max_identity"] = float(max(mem["per_sample_identity"]))
        if emb_real is not None:
            res["frechet_distance"] = frechet_distance(embed(model, _chunks(seqs, emb_len)),
                                                       emb_real)
        out["sets"][name] = res
    return out


def score_rows(res: dict) -> list[dict]:
    """One table row per scored set of :func:`score_generated`."""
    rows = []
    for name, r in res["sets"].items():
        row = {"set": name, "n": r.get("n_seqs", res["num_samples"]), "length": res["length"]}
        row.update({f"js_k{k}": v for k, v in sorted(r["kmer_js"].items())})
        row.update({k: v for k, v in r.items() if not isinstance(v, dict) and k != "n_seqs"})
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
        row["orf_ks_vs_real"] = r["orf_vs_real"]["ks_statistic"]
        row["orf_wasserstein_vs_real_bp"] = r["orf_vs_real"]["wasserstein_bp"]
        rows.append(row)
    return rows


# -- the marginal trap ------------------------------------------------------------------------
def trap_scorer(data_dir, eval_cfg: dict, length: int, n: int, ar_checkpoint=None,
                tok=None):
    """``(score, floor)`` for the marginal trap of a DNA model: ``score(seqs)`` gives k-mer JS
    (``js_k{k}`` for k = 1..kmer_max_k and their mean ``js_mean``), ``gc_mean``, the
    gene-finder coding fraction and the share of sequences with an open frame of 600 bp or more
    (with standard errors) and, for 4 or more sequences, ``discriminator_auroc`` and
    ``discriminator_auroc_sd``; with the run's AR model, ``ar_bits_per_base`` of the set under
    it (lower: more like what the AR model learned); ``floor``: the real held-out windows of
    its reference row."""
    held = HeldOut(PreparedData(data_dir), length, n, eval_cfg["kmer_max_k"], eval_cfg["seed"])
    scorer = None
    if ar_checkpoint is not None:
        scorer = ARScorer(ar_checkpoint, batch_size=eval_cfg["batch_size"])
        if tok is not None:
            scorer.check_vocabulary(tok, "the MDLM checkpoint")

    def score(seqs) -> dict:
        seqs = [np.asarray(s, dtype=np.int64) for s in seqs]
        js = held.kmer_js(seqs)
        out = {f"js_k{k}": v for k, v in js.items()}
        out["js_mean"] = float(np.mean(list(js.values())))
        out["gc_mean"] = float(np.mean([gc_content(s) for s in seqs]))
        bio = biology_scores(seqs)
        out.update({k: bio[k] for k in ("coding_fraction", "coding_fraction_se",
                                        "orf_open_ge600", "orf_open_ge600_se")})
        d = held.discriminator(seqs, eval_cfg["discriminator_k"])
        if d is not None:
            out["discriminator_auroc"] = d["auroc_mean"]
            out["discriminator_auroc_sd"] = d["auroc_sd"]
        if scorer is not None:
            nats, count = scorer.nll(seqs)
            out["ar_bits_per_base"] = float(nats.sum() / count.sum() / math.log(2))
        return out

    return score, held.floor
