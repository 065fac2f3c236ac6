"""Stage 4, evaluation: ``evaluate likelihood | masking-rate | compare | samples | scores |
text-samples | variants``."""

from __future__ import annotations

import json

from dnadiff import io
from dnadiff.cli.common import config, set_threads, verb, verb_group, write_outputs


def register(sub) -> None:
    """Add ``evaluate`` and its measures to the parser."""
    ev = verb_group(sub, "evaluate", "score a model or its samples")
    q = verb(ev, "likelihood", "held-out NELBO in bits per token", likelihood,
             out=("out_json", "out_tsv"), inputs=("checkpoint", "data"))
    q.add_argument("--checkpoint", required=True)
    q.add_argument("--data", required=True)
    q.add_argument("--split", default="test", choices=["train", "validation", "test"])
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)

    q = verb(ev, "masking-rate", "bits per masked token at each masking rate, beside the masked "
             "Markov references, order 0 and the AR model", masking_rate,
             out=("out_json", "out_tsv"), inputs=("checkpoint", "data", "ar_checkpoint"))
    q.add_argument("--checkpoint", required=True, help="MDLM (or AR) checkpoint")
    q.add_argument("--data", required=True)
    q.add_argument("--ar-checkpoint", help="an AR model: its bits per token on the same windows")
    q.add_argument("--split", default="test", choices=["train", "validation", "test"])
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)

    q = verb(ev, "compare", "MDLM vs AR held-out likelihood table", compare, config=False,
             threads=False, out=("out",), inputs=("mdlm", "ar"))
    q.add_argument("--mdlm", required=True, help="likelihood.json of the MDLM run")
    q.add_argument("--ar", required=True, help="likelihood.json of the AR run")
    q.add_argument("--out", required=True, help="output TSV")

    q = verb(ev, "samples", "k-mer JS and GC content of generated sequences", samples,
             threads=False, out=("out_json", "out_tsv", "plot_kmer", "plot_gc"),
             inputs=("samples", "data"))
    q.add_argument("--samples", required=True, help="samples FASTA")
    q.add_argument("--data", required=True)
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot-kmer", required=True)
    q.add_argument("--plot-gc", required=True)

    q = verb(ev, "scores",
             "generated sequences and baselines (i.i.d., Markov) scored alike: k-mer JS, GC, CpG, "
             "homopolymers, discriminator AUROC, memorization, Frechet distance",
             scores, out=("out_json", "out_tsv", "plot"),
             inputs=("samples", "data", "embedder", "annotation"))
    q.add_argument("--samples", required=True, help="samples FASTA (one length)")
    q.add_argument("--data", required=True, help="prepared data directory")
    q.add_argument("--embedder", help="a classifier checkpoint trained on real data (Frechet "
                                      "distance of its embeddings)")
    q.add_argument("--annotation", help="the genome's annotation (GFF3 or genes TSV): real test "
                                        "windows per class (coding, intergenic, promoter) "
                                        "scored as reference rows")
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot", help="k-mer JS plot of every set (PNG)")

    q = verb(ev, "text-samples",
             "generative perplexity (under the run's AR model) and unigram entropy of text samples "
             "and of real text",
             text_samples, out=("out_json", "out_tsv"),
             inputs=("samples", "data", "ar_checkpoint"))
    q.add_argument("--samples", required=True, help="samples JSONL (dnadiff sample, text model)")
    q.add_argument("--data", required=True, help="prepared data directory")
    q.add_argument("--ar-checkpoint", required=True, help="the run's AR model")
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)

    q = verb(ev, "variants", "zero-shot variant effects by class: every single-nucleotide change "
             "of the annotated CDS of a split (stop_gained, missense, synonymous, ...) and "
             "intergenic ones, scored by the model(s) and k-th order Markov chains; AUROC of "
             "each damaging class against synonymous", variants,
             out=("out_json", "out_tsv", "out_vcf", "out_auroc"),
             inputs=("checkpoint", "ar_checkpoint", "data", "annotation"))
    q.add_argument("--checkpoint", required=True, help="a DNA model (MDLM, block diffusion, AR)")
    q.add_argument("--ar-checkpoint", help="a second model scored on the same variants")
    q.add_argument("--data", required=True, help="prepared data (the reference; the Markov "
                                                 "chains are fitted on its training split)")
    q.add_argument("--annotation", required=True, help="the genome's GFF3 (CDS features)")
    q.add_argument("--split", default="test", choices=["train", "validation", "test"])
    q.add_argument("--out-json", required=True, help="AUROCs, class counts, models")
    q.add_argument("--out-tsv", required=True, help="one row per variant, every scorer's score")
    q.add_argument("--out-vcf", help="the classed variants as a VCF (CLASS and GENE in INFO), "
                                     "for dnadiff score variants")
    q.add_argument("--out-auroc", help="the AUROC table (TSV): one row per scorer and "
                                       "comparison, as in the JSON")


def likelihood(args) -> None:
    """``dnadiff evaluate likelihood``."""
    from dnadiff.evaluation.likelihood import (
        LIKELIHOOD_COLUMNS,
        evaluate_likelihood,
        likelihood_rows,
    )

    set_threads(args)
    res = evaluate_likelihood(args.checkpoint, args.data, config(args)["evaluate"], args.split)
    io.write_json(args.out_json, res)
    rows = likelihood_rows(res)
    io.write_tsv(args.out_tsv, rows,
                 [c for c in LIKELIHOOD_COLUMNS if any(c in r for r in rows)])
    print(json.dumps(res))


def masking_rate(args) -> None:
    """``dnadiff evaluate masking-rate``."""
    from dnadiff.evaluation.masking_rate import run_masking_rate

    set_threads(args)
    res = run_masking_rate(args.checkpoint, args.data, config(args)["evaluate"], args.split,
                           args.ar_checkpoint)
    write_outputs({args.out_json: ("json", res), args.out_tsv: ("tsv", res["rows"])})
    print(json.dumps(res["rows"]))


def compare(args) -> None:
    """``dnadiff evaluate compare``."""
    from dnadiff.evaluation.likelihood import compare_table

    io.write_tsv(args.out, compare_table(args.mdlm, args.ar))


def samples(args) -> None:
    """``dnadiff evaluate samples``."""
    from dnadiff.evaluation.dna_scores import evaluate_samples
    from dnadiff.evaluation.plots import plot_gc, plot_kmer_js

    cfg = config(args)
    res = evaluate_samples(args.samples, args.data, cfg["evaluate"]["kmer_max_k"],
                           cfg["evaluate"]["seed"])
    gc_gen, gc_real = res.pop("_gc_generated"), res.pop("_gc_real")
    io.write_json(args.out_json, res)
    io.write_tsv(args.out_tsv, res["kmer_js"])
    plot_kmer_js(res["kmer_js"], args.plot_kmer)
    plot_gc(gc_gen, gc_real, args.plot_gc)
    print(json.dumps(res))


def scores(args) -> None:
    """``dnadiff evaluate scores``."""
    from dnadiff.evaluation.dna_scores import score_generated, score_rows

    set_threads(args)
    cfg = config(args)
    embedder = None
    if args.embedder:
        from dnadiff.checkpoint import load_classifier

        embedder = load_classifier(args.embedder)
    res = score_generated(args.samples, args.data, cfg["evaluate"], embedder, args.annotation)
    io.write_json(args.out_json, res)
    io.write_tsv(args.out_tsv, score_rows(res))
    if args.plot:
        from dnadiff.evaluation.plots import plot_sample_scores

        plot_sample_scores(res["sets"], args.plot)
    print(json.dumps(score_rows(res)))


def text_samples(args) -> None:
    """``dnadiff evaluate text-samples``."""
    from dnadiff.evaluation.text_scores import evaluate_text_samples

    set_threads(args)
    res = evaluate_text_samples(args.samples, args.data, args.ar_checkpoint,
                                config(args)["evaluate"])
    write_outputs({args.out_json: ("json", res), args.out_tsv: ("tsv", res["rows"])})
    print(json.dumps(res["rows"]))


def variants(args) -> None:
    """``dnadiff evaluate variants``."""
    from dnadiff.evaluation.snv_classes import INFO_LINES, run_variant_classes

    set_threads(args)
    cfg = config(args)
    res = run_variant_classes(args.checkpoint, args.data, args.annotation, args.split,
                              cfg["score"], cfg["evaluate"]["markov_likelihood_orders"],
                              args.ar_checkpoint)
    snvs, rows = res.pop("variants"), res.pop("rows")
    outputs = {args.out_json: ("json", res), args.out_tsv: ("tsv", rows)}
    if args.out_auroc:
        outputs[args.out_auroc] = ("tsv", res["auroc"])
    write_outputs(outputs)
    if args.out_vcf:
        from dnadiff.data.vcf import write_vcf

        write_vcf(args.out_vcf, snvs, res["contig_lengths"], INFO_LINES)
    print(json.dumps(res["auroc"]))
