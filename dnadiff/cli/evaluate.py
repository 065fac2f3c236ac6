"""Stage 4, evaluation: ``evaluate likelihood | masking-rate | compare | samples | scores |
text-samples | variants``."""

from __future__ import annotations

import json

from dnadiff import io
from dnadiff.cli.common import config, optional, paths, verb, verb_group, write_outputs


def register(sub) -> None:
    """Add ``evaluate`` and its measures to the parser."""
    ev = verb_group(sub, "evaluate", "score a model or its samples")
    _held_out(verb(ev, "likelihood", "held-out NELBO in bits per token", likelihood,
                   inputs={"checkpoint": None, "data": None}))

    _held_out(verb(ev, "masking-rate", "bits per masked token at each masking rate, beside the "
                   "masked Markov references, order 0 and the AR model", masking_rate,
                   inputs={"checkpoint": "MDLM (or AR) checkpoint", "data": None,
                           "ar_checkpoint": optional("an AR model: its bits per token on the "
                                                     "same windows")}))

    verb(ev, "compare", "MDLM vs AR held-out likelihood table", compare, config=False,
         threads=False, inputs={"mdlm": "likelihood.json of the MDLM run",
                                "ar": "likelihood.json of the AR run"},
         out={"out": "output TSV"})

    verb(ev, "samples", "k-mer JS and GC content of generated sequences", samples,
         threads=False, inputs={"samples": "samples FASTA", "data": None},
         out=dict.fromkeys(("out_json", "out_tsv", "plot_kmer", "plot_gc")))

    verb(ev, "scores",
         "generated sequences and baselines (i.i.d., Markov) scored alike: k-mer JS, GC, CpG, "
         "homopolymers, discriminator AUROC, memorization, Frechet distance", scores,
         inputs={"samples": "samples FASTA (one length)", "data": "prepared data directory",
                 "embedder": optional("a classifier checkpoint trained on real data (Frechet "
                                      "distance of its embeddings)"),
                 "annotation": optional("the genome's annotation (GFF3 or genes TSV): real test "
                                        "windows per class (coding, intergenic, promoter) "
                                        "scored as reference rows")},
         out={"out_json": None, "out_tsv": None,
              "plot": optional("k-mer JS plot of every set (PNG)")})

    verb(ev, "text-samples",
         "generative perplexity (under the run's AR model) and unigram entropy of text samples "
         "and of real text", text_samples,
         inputs={"samples": "samples JSONL (dnadiff sample, text model)",
                 "data": "prepared data directory", "ar_checkpoint": "the run's AR model"},
         out={"out_json": None, "out_tsv": None})

    q = verb(ev, "variants", "zero-shot variant effects by class: every single-nucleotide change "
             "of the annotated CDS of a split (stop_gained, missense, synonymous, ...) and "
             "intergenic ones, scored by the model(s) and k-th order Markov chains; AUROC of "
             "each damaging class against synonymous", variants,
             inputs={"checkpoint": "a DNA model (MDLM, block diffusion, AR)",
                     "ar_checkpoint": optional("a second model scored on the same variants"),
                     "data": "prepared data (the reference; the Markov chains are fitted on "
                             "its training split)",
                     "annotation": "the genome's GFF3 (CDS features)"},
             out={"out_json": "AUROCs, class counts, models",
                  "out_tsv": "one row per variant, every scorer's score",
                  "out_vcf": optional("the classed variants as a VCF (CLASS and GENE in INFO), "
                                      "for dnadiff score variants"),
                  "out_auroc": optional("the AUROC table (TSV): one row per scorer and "
                                        "comparison, as in the JSON")})
    q.add_argument("--split", default="test", choices=["train", "validation", "test"])


def _held_out(q) -> None:
    """The split and the outputs of the held-out measures (likelihood, masking-rate)."""
    q.add_argument("--split", default="test", choices=["train", "validation", "test"])
    paths(q, out={"out_json": None, "out_tsv": None})


def likelihood(args) -> None:
    """``dnadiff evaluate likelihood``."""
    from dnadiff.evaluation.likelihood import (
        LIKELIHOOD_COLUMNS,
        evaluate_likelihood,
        likelihood_rows,
    )

    res = evaluate_likelihood(args.checkpoint, args.data, config(args)["evaluate"], args.split)
    io.write_json(args.out_json, res)
    rows = likelihood_rows(res)
    io.write_tsv(args.out_tsv, rows,
                 [c for c in LIKELIHOOD_COLUMNS if any(c in r for r in rows)])
    print(json.dumps(res))


def masking_rate(args) -> None:
    """``dnadiff evaluate masking-rate``."""
    from dnadiff.evaluation.masking_rate import run_masking_rate

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

    res = evaluate_text_samples(args.samples, args.data, args.ar_checkpoint,
                                config(args)["evaluate"])
    write_outputs({args.out_json: ("json", res), args.out_tsv: ("tsv", res["rows"])})
    print(json.dumps(res["rows"]))


def variants(args) -> None:
    """``dnadiff evaluate variants``."""
    from dnadiff.evaluation.snv_classes import INFO_LINES, run_variant_classes

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
