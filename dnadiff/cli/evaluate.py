"""Stage 4, evaluation: ``evaluate likelihood | compare | samples | scores | text-samples``."""

from __future__ import annotations

import json

from dnadiff import io
from dnadiff.cli.common import add_config, add_threads, config, outputs, set_threads, write_outputs


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a model or its samples")
    ev = p.add_subparsers(dest="what", required=True)
    q = ev.add_parser("likelihood", help="held-out NELBO in bits per token")
    add_config(q)
    add_threads(q)
    q.add_argument("--checkpoint", required=True)
    q.add_argument("--data", required=True)
    q.add_argument("--split", default="test", choices=["train", "validation", "test"])
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    outputs(q, "out_json", "out_tsv")
    q.set_defaults(handler=likelihood)

    q = ev.add_parser("compare", help="MDLM vs AR held-out likelihood table")
    q.add_argument("--mdlm", required=True, help="likelihood.json of the MDLM run")
    q.add_argument("--ar", required=True, help="likelihood.json of the AR run")
    q.add_argument("--out", required=True, help="output TSV")
    outputs(q, "out")
    q.set_defaults(handler=compare)

    q = ev.add_parser("samples", help="k-mer JS and GC content of generated sequences")
    add_config(q)
    q.add_argument("--samples", required=True, help="samples FASTA")
    q.add_argument("--data", required=True)
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot-kmer", required=True)
    q.add_argument("--plot-gc", required=True)
    outputs(q, "out_json", "out_tsv", "plot_kmer", "plot_gc")
    q.set_defaults(handler=samples)

    q = ev.add_parser("scores", help="generated sequences and baselines (i.i.d., Markov) scored "
                                     "alike: k-mer JS, GC, CpG, homopolymers, discriminator "
                                     "AUROC, memorization, Frechet distance")
    add_config(q)
    add_threads(q)
    q.add_argument("--samples", required=True, help="samples FASTA (one length)")
    q.add_argument("--data", required=True, help="prepared data directory")
    q.add_argument("--embedder", help="a classifier checkpoint trained on real data (Frechet "
                                      "distance of its embeddings)")
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot", help="k-mer JS plot of every set (PNG)")
    outputs(q, "out_json", "out_tsv", "plot")
    q.set_defaults(handler=scores)

    q = ev.add_parser("text-samples", help="generative perplexity (under the run's AR model) and "
                                           "unigram entropy of text samples and of real text")
    add_config(q)
    add_threads(q)
    q.add_argument("--samples", required=True, help="samples JSONL (dnadiff sample, text model)")
    q.add_argument("--data", required=True, help="prepared data directory")
    q.add_argument("--ar-checkpoint", required=True, help="the run's AR model")
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    outputs(q, "out_json", "out_tsv")
    q.set_defaults(handler=text_samples)


def likelihood(args) -> None:
    from dnadiff.evaluation.likelihood import (
        LIKELIHOOD_COLUMNS,
        evaluate_likelihood,
        likelihood_rows,
    )

    set_threads(args)
    res = evaluate_likelihood(args.checkpoint, args.data, config(args)["evaluate"], args.split)
    io.write_json(args.out_json, res)
    io.write_tsv(args.out_tsv, likelihood_rows(res), [c for c in LIKELIHOOD_COLUMNS if c in res])
    print(json.dumps(res))


def compare(args) -> None:
    from dnadiff.evaluation.likelihood import compare_table

    io.write_tsv(args.out, compare_table(args.mdlm, args.ar))


def samples(args) -> None:
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
    from dnadiff.evaluation.dna_scores import score_generated, score_rows

    set_threads(args)
    cfg = config(args)
    embedder = None
    if args.embedder:
        from dnadiff.checkpoint import load_classifier

        embedder = load_classifier(args.embedder)
    res = score_generated(args.samples, args.data, cfg["evaluate"], embedder)
    io.write_json(args.out_json, res)
    io.write_tsv(args.out_tsv, score_rows(res))
    if args.plot:
        from dnadiff.evaluation.plots import plot_sample_scores

        plot_sample_scores(res["sets"], args.plot)
    print(json.dumps(score_rows(res)))


def text_samples(args) -> None:
    from dnadiff.evaluation.text_scores import evaluate_text_samples

    set_threads(args)
    res = evaluate_text_samples(args.samples, args.data, args.ar_checkpoint,
                                config(args)["evaluate"])
    write_outputs({args.out_json: ("json", res), args.out_tsv: ("tsv", res["rows"])})
    print(json.dumps(res["rows"]))
