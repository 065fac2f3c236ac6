"""Stage 6, labeled benchmarks: ``downstream run | table`` and ``conditional train | sample |
score``."""

from __future__ import annotations

import json

from dnadiff.cli.common import add_config, add_threads, config, outputs, set_threads
from dnadiff.errors import DnadiffError


def add_task_inputs(p) -> None:
    p.add_argument("--task", help="task name (default: conditional.task for conditional verbs)")
    p.add_argument("--genome", help="the run's genome FASTA (annotation and coordinates tasks)")
    p.add_argument("--annotation", help="the run's annotation (GFF3) for annotation tasks")


def register(sub) -> None:
    p = sub.add_parser("downstream", help="classification benchmarks of a pretrained model")
    ds = p.add_subparsers(dest="what", required=True)
    q = ds.add_parser("run", help="fine-tune, probe, k-mer and from-scratch on one task")
    add_config(q)
    add_threads(q)
    add_task_inputs(q)
    q.add_argument("--checkpoint", required=True, help="pretrained MDLM checkpoint")
    q.add_argument("--out-json", required=True)
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--oracle", help="also save the best fine-tuned classifier here")
    outputs(q, "out_json", "out_tsv", "oracle")
    q.set_defaults(handler=run_task)
    q = ds.add_parser("table", help="one table and plot over tasks")
    q.add_argument("--inputs", nargs="+", required=True, help="result JSON of each task")
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot")
    outputs(q, "out_tsv", "plot")
    q.set_defaults(handler=table)

    p = sub.add_parser("conditional", help="class-conditional MDLM with classifier-free guidance")
    cd = p.add_subparsers(dest="what", required=True)
    q = cd.add_parser("train", help="train on conditional.task from a pretrained MDLM")
    add_config(q)
    add_threads(q)
    add_task_inputs(q)
    q.add_argument("--checkpoint", required=True, help="pretrained MDLM checkpoint")
    q.add_argument("--out", required=True, help="output checkpoint")
    q.add_argument("--metrics", required=True, help="output metrics.csv")
    q.add_argument("--workdir", required=True)
    outputs(q, "out", "metrics")
    q.set_defaults(handler=conditional_train)
    q = cd.add_parser("sample", help="samples per class and guidance weight, and unconditional")
    add_config(q)
    add_threads(q)
    q.add_argument("--checkpoint", required=True, help="conditional checkpoint")
    q.add_argument("--out", required=True, help="output FASTA")
    outputs(q, "out")
    q.set_defaults(handler=conditional_sample)
    q = cd.add_parser("score", help="oracle agreement per class")
    add_config(q)
    add_threads(q)
    add_task_inputs(q)
    q.add_argument("--samples", required=True)
    q.add_argument("--oracle", required=True, help="classifier checkpoint (downstream run "
                                                   "--oracle)")
    q.add_argument("--out-tsv", required=True)
    q.add_argument("--plot")
    outputs(q, "out_tsv", "plot")
    q.set_defaults(handler=conditional_score)


def run_task(args) -> None:
    from dnadiff.downstream import run_downstream

    set_threads(args)
    cfg = config(args)
    if not args.task:
        raise DnadiffError("downstream run needs --task")
    res = run_downstream(cfg, args.task, args.checkpoint, args.out_json, args.out_tsv,
                         args.oracle, args.genome, args.annotation)
    print(json.dumps(res["summary"]))


def table(args) -> None:
    from dnadiff.downstream import downstream_table

    downstream_table(args.inputs, args.out_tsv, args.plot)


def _conditional_config(args) -> dict:
    set_threads(args)
    cfg = config(args)
    if getattr(args, "task", None):
        cfg["conditional"]["task"] = args.task
    return cfg


def conditional_train(args) -> None:
    from dnadiff import conditional

    cfg = _conditional_config(args)
    print(json.dumps(conditional.run_train(cfg, args.checkpoint, args.out, args.metrics,
                                           args.workdir, args.genome, args.annotation)))


def conditional_sample(args) -> None:
    from dnadiff import conditional

    cfg = _conditional_config(args)
    print(json.dumps({"samples": conditional.run_sample(cfg, args.checkpoint, args.out,
                                                        cfg["sample"]["seed"])}))


def conditional_score(args) -> None:
    from dnadiff import conditional

    cfg = _conditional_config(args)
    print(json.dumps(conditional.run_score(cfg, args.samples, args.oracle, args.out_tsv,
                                           args.plot, args.genome, args.annotation)))
