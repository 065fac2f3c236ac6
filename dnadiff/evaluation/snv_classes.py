"""Every single-nucleotide change of the annotated coding sequences of some contigs, by what it
does to the protein, and how well a variant score separates the classes: the SNV-class
validation of zero-shot variant effects (``dnadiff evaluate variants``).

Classes (:data:`CLASSES`): a change in a CDS is ``stop_gained`` (a sense codon becomes a stop),
``stop_lost`` (the stop codon becomes a sense codon), ``start_lost`` (the ATG of the first codon
no longer codes for M), ``missense`` (another amino acid) or ``synonymous`` (the same amino acid,
or a stop to another stop); ``intergenic`` changes are drawn at positions no annotated feature
covers (one alternative base each, at random).

- A CDS is the GFF3 ``CDS`` lines sharing an ID (or a Parent): its parts joined in transcript
  order (ascending on the plus strand; descending and complemented on the minus strand), the
  first codon starting ``phase`` bases into the first part (GFF3 column 8; '.' is 0). Codons
  are translated with the NCBI genetic code ``table`` (1, the standard code, by default;
  Biopython's tables). A CDS whose reference translation has a stop before its last codon (a
  pseudogene, another frame, another code) is left out; so are codons touching N.
- A change that two CDS classify differently (overlapping genes) is left out; the same class
  twice is kept once. VCF alleles are on the plus strand.
- Subsampling: at most ``max_per_class`` changes per class, drawn with ``seed``.

The scores' convention: lower is more damaging (log p(alt) - log p(ref)), so the AUROC of a
damaging class against ``synonymous`` is that of the negated score (:func:`class_auroc`).
"""

from __future__ import annotations

import math

import numpy as np

from dnadiff.data.vcf import SNV
from dnadiff.errors import DnadiffError
from dnadiff.tokenizers import N_BASES

CLASSES = ("stop_gained", "missense", "synonymous", "start_lost", "stop_lost", "intergenic")
#: the damaging classes scored against synonymous changes
COMPARISONS = (("stop_gained", "synonymous"), ("missense", "synonymous"))
#: the INFO header lines of the VCF of classed SNVs
INFO_LINES = ('##INFO=<ID=CLASS,Number=1,Type=String,Description="What the change does to the '
              'protein: ' + ", ".join(CLASSES) + '">',
              '##INFO=<ID=GENE,Number=1,Type=String,Description="The CDS (GFF3 ID) it lies in">')


def codon_table(tokenizer, table: int = 1) -> np.ndarray:
    """The amino acid ('*': stop) of every codon code 16 a + 4 b + c of base ids a, b, c."""
    from Bio.Data.CodonTable import unambiguous_dna_by_id

    code = unambiguous_dna_by_id[table]
    bases = tokenizer.decode(tokenizer.generable_ids)
    aa = np.empty(len(bases) ** 3, dtype="<U1")
    for i, codon in enumerate(a + b + c for a in bases for b in bases for c in bases):
        aa[i] = "*" if codon in code.stop_codons else code.forward_table[codon]
    return aa


def cds_changes(seq: np.ndarray, parts: list[tuple[int, int]], strand: str, phase: int,
                aa: np.ndarray, complement: np.ndarray) -> dict | None:
    """Every change of one CDS (``parts``: its 0-based half-open spans on a contig ``seq`` of
    token ids): plus-strand ``pos`` (0-based), ``alt`` (base id) and ``cls`` (index into
    :data:`CLASSES`); ``None`` when its translation has an early stop."""
    pos = np.concatenate([np.arange(a, b) for a, b in sorted(parts)])
    if strand == "-":
        pos = pos[::-1]
    pos = pos[phase:]
    pos = pos[: len(pos) // 3 * 3]
    ids = np.asarray(seq, dtype=np.int64)[pos]
    if strand == "-":
        ids = complement[ids]
    codons = ids.reshape(-1, 3)
    if not len(codons):
        return None
    good = (codons < N_BASES).all(1)
    ref_code = np.where(good, codons[:, 0] * 16 + codons[:, 1] * 4 + codons[:, 2], 0)
    ref_aa = aa[ref_code]
    if (ref_aa[:-1][good[:-1]] == "*").any():
        return None
    out = {"pos": [], "alt": [], "cls": []}
    for q in range(3):
        for b in range(N_BASES):
            keep = good & (codons[:, q] != b)
            mut = ref_code + (b - codons[:, q]) * 4 ** (2 - q)
            r, m = ref_aa[keep], aa[mut[keep]]
            cls = np.where(r == "*", np.where(m == "*", 2, 4),
                           np.where(m == "*", 0, np.where(m == r, 2, 1)))
            first = np.flatnonzero(keep) == 0
            cls = np.where(first & (r == "M") & (m != "M") & (m != "*"), 3, cls)
            out["pos"].append(pos[np.flatnonzero(keep) * 3 + q])
            out["alt"].append(np.full(keep.sum(), b) if strand == "+" else
                              np.full(keep.sum(), complement[b]))
            out["cls"].append(cls)
    return {k: np.concatenate(v).astype(np.int64) for k, v in out.items()}


def _unique_changes(rows, contigs, allowed) -> tuple[np.ndarray, int]:
    """The rows (contig, pos, alt, class, gene) of changes at allowed positions, each change
    once: kept when every CDS holding it gives it the same class, else left out (counted)."""
    t = np.concatenate(rows) if rows else np.zeros((0, 5), np.int64)
    if allowed is not None:
        keep = np.zeros(len(t), dtype=bool)
        for c in np.unique(t[:, 0]):
            sel = t[:, 0] == c
            keep[sel] = allowed[contigs[c]][t[sel, 1]]
        t = t[keep]
    if not len(t):
        return t, 0
    key = t[:, 0] * (1 << 40) + t[:, 1] * 8 + t[:, 2]
    order = np.lexsort((t[:, 3], key))
    t, key = t[order], key[order]
    _, first = np.unique(key, return_index=True)
    agree = np.minimum.reduceat(t[:, 3], first) == np.maximum.reduceat(t[:, 3], first)
    return t[first[agree]], int((~agree).sum())


def _subsample(rng, n: int, cap: int | None) -> np.ndarray:
    return np.arange(n) if cap is None or n <= cap else np.sort(rng.choice(n, cap, replace=False))


def classify_snvs(reference: dict[str, np.ndarray], feats, contigs, tokenizer,
                  max_per_class: int | None = None, seed: int = 0, table: int = 1,
                  allowed: dict[str, np.ndarray] | None = None) -> tuple[list[SNV], dict]:
    """The classed SNVs of the CDS of ``contigs`` (``feats``: the annotation's features, from
    :func:`~dnadiff.tasks.annotation.read_features`), each with ``CLASS`` and ``GENE`` in its
    INFO, and a summary (counts per class, what was left out). ``allowed``: per contig, a bool
    per position that may carry a change (a split's segments); every position when ``None``."""
    aa, comp = codon_table(tokenizer, table), np.asarray(tokenizer.complement, np.int64)
    gen = list(tokenizer.generable_ids)
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list] = {}
    for f in feats:
        if f.ftype == "CDS" and f.contig in contigs:
            groups.setdefault((f.contig, f.key), []).append(f)
    rows, genes, skipped = [], [], 0
    for (contig, key), parts in groups.items():
        strand = parts[0].strand
        first = min(parts, key=lambda f: f.start) if strand != "-" else max(
            parts, key=lambda f: f.end)
        ch = cds_changes(reference[contig], [(f.start, f.end) for f in parts], strand,
                         first.phase or 0, aa, comp)
        if ch is None:
            skipped += 1
            continue
        ci = contigs.index(contig)
        rows.append(np.stack([np.full(len(ch["pos"]), ci), ch["pos"], ch["alt"], ch["cls"],
                              np.full(len(ch["pos"]), len(genes))], 1))
        genes.append(key)
    table_, ambiguous = _unique_changes(rows, contigs, allowed)
    snvs, counts = [], {}
    for c, name in enumerate(CLASSES[:-1]):
        sel = table_[table_[:, 3] == c]
        sel = sel[_subsample(rng, len(sel), max_per_class)]
        counts[name] = len(sel)
        snvs += [_snv(contigs[r[0]], r[1], reference, r[2], name, genes[r[4]], tokenizer)
                 for r in sel]
    n_inter = max_per_class if max_per_class is not None else counts["synonymous"]
    inter = intergenic_snvs(reference, feats, contigs, tokenizer, n_inter, rng, allowed)
    counts["intergenic"] = len(inter)
    if not any(counts.values()):
        raise DnadiffError(f"no single-nucleotide change to class on {', '.join(contigs)}: "
                           "the annotation has no CDS (or no unannotated base) there")
    summary = {"contigs": list(contigs), "counts": counts, "cds_left_out_early_stop": skipped,
               "changes_left_out_ambiguous": ambiguous, "genetic_code": table,
               "bases": "".join(tokenizer.decode(gen))}
    order = {c: i for i, c in enumerate(contigs)}
    return sorted(snvs + inter, key=lambda s: (order[s.chrom], s.pos, s.alt)), summary


def _snv(contig: str, pos: int, reference, alt: int, cls: str, gene: str, tokenizer) -> SNV:
    ref = tokenizer.decode(reference[contig][pos: pos + 1])
    gene = "".join(ch if ch.isalnum() or ch in ":._-" else "_" for ch in gene)
    return SNV(contig, int(pos) + 1, ref, tokenizer.decode([alt]), ".",
               f"CLASS={cls}" + (f";GENE={gene}" if gene else ""))


def intergenic_snvs(reference, feats, contigs, tokenizer, n: int, rng,
                    allowed: dict[str, np.ndarray] | None = None) -> list[SNV]:
    """``n`` changes (or as many as there are places) at distinct random positions of
    ``contigs`` that no feature of any type covers and that hold a base; the alternative base
    drawn uniformly among the other bases."""
    free = []
    gen = np.asarray(tokenizer.generable_ids)
    for ci, contig in enumerate(contigs):
        seq = np.asarray(reference[contig])
        ok = np.isin(seq, gen)
        for f in feats:
            if f.contig == contig:
                ok[f.start:f.end] = False
        if allowed is not None:
            ok &= allowed[contig]
        where = np.flatnonzero(ok)
        free.append(np.stack([np.full(len(where), ci), where], 1))
    places = np.concatenate(free) if free else np.zeros((0, 2), np.int64)
    picked = places[np.sort(rng.choice(len(places), min(n, len(places)), replace=False))]
    out = []
    for ci, p in picked:
        ref = int(reference[contigs[ci]][p])
        alt = int(rng.choice(gen[gen != ref]))
        out.append(_snv(contigs[ci], p, reference, alt, "intergenic", "", tokenizer))
    return out


def snv_class(snv: SNV) -> str:
    """The CLASS of an SNV's INFO (or "")."""
    for field in snv.info.split(";"):
        if field.startswith("CLASS="):
            return field[6:]
    return ""


def class_auroc(scores, classes, damaging: str, neutral: str = "synonymous") -> dict:
    """AUROC of the negated score (lower = more damaging) for ``damaging`` against ``neutral``
    changes, with the Hanley-McNeil standard error and the class sizes; NaN when a class is
    empty."""
    from sklearn.metrics import roc_auc_score

    scores, classes = np.asarray(scores, np.float64), np.asarray(classes)
    pos, neg = scores[classes == damaging], scores[classes == neutral]
    row = {"positive": damaging, "negative": neutral, "n_positive": len(pos),
           "n_negative": len(neg), "auroc": float("nan"), "auroc_se": float("nan")}
    if len(pos) and len(neg):
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        a = float(roc_auc_score(y, -np.r_[pos, neg]))
        q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
        var = (a * (1 - a) + (len(pos) - 1) * (q1 - a * a) + (len(neg) - 1) * (q2 - a * a)) / (
            len(pos) * len(neg))
        row.update(auroc=a, auroc_se=math.sqrt(max(var, 0.0)))
    return row


def auroc_rows(scores: dict[str, np.ndarray], classes) -> list[dict]:
    """For each scorer (name -> scores) and each of :data:`COMPARISONS`: the AUROC row, with
    the mean score of each class of the pair."""
    classes = np.asarray(classes)
    rows = []
    for name, s in scores.items():
        s = np.asarray(s, np.float64)
        for damaging, neutral in COMPARISONS:
            row = {"scorer": name, **class_auroc(s, classes, damaging, neutral)}
            for which, cls in (("positive", damaging), ("negative", neutral)):
                sel = s[classes == cls]
                row[f"mean_score_{which}"] = float(sel.mean()) if len(sel) else float("nan")
            rows.append(row)
    return rows


def split_reference(genome, split: str) -> tuple[dict[str, np.ndarray], list[str], dict]:
    """(every contig's token ids, the contigs of ``split``, per such contig a bool per
    position: inside the split) of prepared data ``genome``."""
    reference = {c["name"]: genome.tokens(i) for i, c in enumerate(genome.contigs)}
    allowed: dict[str, np.ndarray] = {}
    for ci, a, b in genome.segments(split):
        name = genome.contigs[ci]["name"]
        allowed.setdefault(name, np.zeros(len(reference[name]), dtype=bool))[a:b] = True
    if not allowed:
        raise DnadiffError(f"{genome.path}: the {split} split is empty")
    return reference, list(allowed), allowed


def run_variant_classes(checkpoint, data_dir, annotation, split: str, score_cfg: dict,
                        markov_orders, ar_checkpoint=None) -> dict:
    """``dnadiff evaluate variants``: the classed SNVs of the CDS of ``split``'s contigs in the
    prepared data (its reference), scored by ``checkpoint`` (and ``ar_checkpoint``) and by
    k-th order Markov chains (each of ``markov_orders``, fitted on the training split, both
    strands), with the AUROCs of :data:`COMPARISONS`. ``variants`` holds the SNVs and ``rows``
    one row per SNV with each scorer's score."""
    from dnadiff.evaluation.baselines import fit_markov
    from dnadiff.evaluation.likelihood import load_for_scoring, load_model
    from dnadiff.evaluation.variants import (
        check_window,
        markov_scorer,
        model_scorer,
        require_dna,
        snv_scores,
    )
    from dnadiff.tasks.annotation import read_features

    ckpt, model, objective, tok, device, genome, _ = load_for_scoring(checkpoint, data_dir)
    require_dna(tok, checkpoint)
    window, both = score_cfg["window"], score_cfg["both_strands"]
    reference, contigs, allowed = split_reference(genome, split)
    lengths = {name: len(ids) for name, ids in reference.items()}
    feats = read_features(annotation, lengths, genome.path / "index.json")
    snvs, summary = classify_snvs(reference, feats, contigs, tok, score_cfg["max_per_class"],
                                  score_cfg["seed"], allowed=allowed)
    models = [(checkpoint, ckpt, model, objective)]
    if ar_checkpoint is not None:
        ar = load_model(ar_checkpoint)
        if ar[0]["tokenizer"].tokens != tok.tokens:
            raise DnadiffError(f"{ar_checkpoint} and {checkpoint} use different tokenizers")
        models.append((ar_checkpoint, *ar[:3]))
    scores, described = {}, []
    for path, c, m, obj in models:
        check_window(window, c["config"]["data"]["window"], path)
        name = obj.name if obj.name not in scores else f"{obj.name}_2"
        scores[name] = snv_scores(model_scorer(m, obj, tok, device), reference, snvs, tok,
                                  window, both, score_cfg["batch_size"])["score"]
        described.append({"scorer": name, "checkpoint": str(path), "objective": obj.name,
                          "block_size": obj.block_size, "step": c["step"],
                          "backbone": c["config"]["model"]["backbone"],
                          "window": c["config"]["data"]["window"]})
    train = genome.split_arrays("train")
    strands = train + [tok.reverse_complement(np.asarray(a)) for a in train]
    for k in sorted(set(markov_orders)):
        chain = fit_markov(strands, k)
        scores[f"markov{k}"] = snv_scores(markov_scorer(chain), reference, snvs, tok, window,
                                          both, 4096)["score"]  # numpy: large batches
    classes = [snv_class(s) for s in snvs]
    rows = [{"chrom": s.chrom, "pos": s.pos, "ref": s.ref, "alt": s.alt, "class": cls,
             "gene": s.info.partition("GENE=")[2], **{n: float(v[k]) for n, v in scores.items()}}
            for k, (s, cls) in enumerate(zip(snvs, classes))]
    return {"split": split, "contig_lengths": {c: lengths[c] for c in contigs},
            "window": window, "both_strands": both, "models": described,
            "markov_orders": sorted(set(markov_orders)), **summary,
            "auroc": auroc_rows(scores, classes), "rows": rows, "variants": snvs}
