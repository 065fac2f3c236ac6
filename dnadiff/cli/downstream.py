"""Stage 6, labeled benchmarks: ``downstream run | table`` and ``conditional train | sample |
score``."""

from __future__ import annotations

import json

from dnadiff.cli.common import config, set_threads, verb
from dnadiff.errors import DnadiffError

#: the options of :func:`add_task_inputs` that name files
TASK_INPUTS = ("genome", "annotation")


def add_task_inputs(p) -> None:
    """The options that name a task and its genome."""
    p.add_argument("--task", help="task name (default: conditional.task for conditional verbs)")
    p.add_argument("--genome", help="the run's genome FASTA (annotation and coordinates tasks)")
    p.add_argument("--annotation", help="the run's annotation (GFF3) for annotation tasks")


def register(sub) -> None:
    """Add ``downstream`` and ``conditional`` to the parser."""
    p = sub.add_parser("downstream", help="classification benchmarks of a pretrained model")
    ds = p.add_subparsers(dest="what", required=True)
    q = verb(ds, "run", "fine-tune, probe, k-mer and from-scratch on one task", run_task,
             out=("out_json", "out_tsv", "oracle"), inputs=(*TASK_INPUTS, "checkpoint"))
    add_task_inputs(q)
    q.add_argument("--checkpoint", required=True, help="pretrained MDLM checkpoint")
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--oracle", help="also save the best fine-tuned classifier here")
    q = verb(ds, "table", "one table and plot over tasks", table, config=False, threads=False,
             out=("out_tsv", "plot", "comparison"), inputs=("inputs",))
    q.add_argument("--inputs", nargs="+", required=True, help="result JSON of each task")
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot")
    q.add_argument("--comparison", help="Markdown: our methods beside the published figures")

    p = sub.add_parser("conditional", help="class-conditional MDLM with classifier-free guidance")
    cd = p.add_subparsers(dest="what", required=True)
    q = verb(cd, "train", "train on conditional.task from a pretrained MDLM", conditional_train,
             out=("out", "metrics"), out_dirs=("workdir",), inputs=(*TASK_INPUTS, "checkpoint"))
    add_task_inputs(q)
    q.add_argument("--checkpoint", required=True, help="pretrained MDLM checkpoint")
    q.add_argument("--out", required=True, help="output checkpoint")
    q.add_argument("--metrics", required=True, help="output metrics.csv")
    q.add_argument("--workdir", required=True)
    q = verb(cd, "sample", "samples per class and guidance weight, and unconditional",
             conditional_sample, out=("out",), inputs=("checkpoint",))
    q.add_argument("--checkpoint", required=True, help="conditional checkpoint")
    q.add_argument("--out", required=True, help="output FASTA")
    q = verb(cd, "score", "oracle agreement per class", conditional_score, out=("out_tsv", "plot"),
             inputs=(*TASK_INPUTS, "samples", "oracle"))
    add_task_inputs(q)
    q.add_argument("--samples", required=True)
    q.add_argument("--oracle", required=True, help="classifier checkpoint (downstream run "
                                                   "--oracle)")
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot")


def run_task(args) -> None:
    """``dnadiff downstream run``."""
    from dnadiff.downstream import run_downstream

    set_threads(args)
    cfg = config(args)
    if not args.task:
        raise DnadiffError("downstream run needs --task")
    res = run_downstream(cfg, args.task, args.checkpoint, args.out_json, args.out_tsv,
                         args.oracle, args.genome, args.annotation)
    print(json.dumps(res["summary"]))


def table(args) -> None:
    """``dnadiff downstream table``."""
    from dnadiff.downstream import downstream_table

    downstream_table(args.inputs, args.out_tsv, args.plot, args.comparison)


def _conditional_config(args) -> dict:
    set_threads(args)
    cfg = config(args)
    if getattr(args, "task", None):
        cfg["conditional"]["task"] = args.task
    return cfg


def conditional_train(args) -> None:
    """``dnadiff conditional train``."""
    from dnadiff import conditional

    cfg = _conditional_config(args)
    print(json.dumps(conditional.run_train(cfg, args.checkpoint, args.out, args.metrics,
                                           args.workdir, args.genome, args.annotation)))


def conditional_sample(args) -> None:
    """``dnadiff conditional sample``."""
    from dnadiff import conditional

    cfg = _conditional_config(args)
    print(json.dumps({"samples": conditional.run_sample(cfg, args.checkpoint, args.out,
                                                        cfg["sample"]["seed"])}))


def conditional_score(args) -> None:
    """``dnadiff conditional score``."""
    from dnadiff import conditional

    cfg = _conditional_config(args)
    print(json.dumps(conditional.run_score(cfg, args.samples, args.oracle, args.out_tsv,
                                           args.plot, args.genome, args.annotation)))
