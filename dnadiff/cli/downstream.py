"""Stage 6, labeled benchmarks: ``downstream run | table``; the parser of a verb on one task
(:func:`task_verb`), which the ``conditional`` verbs share."""

from __future__ import annotations

import json
import logging

from dnadiff.cli.common import config, optional, paths, verb, verb_group, write_outputs
from dnadiff.errors import DnadiffError, InputFileError

log = logging.getLogger(__name__)


def task_verb(sub, name: str, help: str, handler, *, pretrained: bool = False, **declared):
    """A verb on one task (:func:`verb`): first the options that name the task and its genome
    (and, ``pretrained``, the pretrained model it starts from), then its own paths
    (``declared``: :func:`paths`)."""
    p = verb(sub, name, help, handler)
    p.add_argument("--task", help="task name (default: conditional.task for conditional verbs)")
    paths(p, inputs={
        "genome": optional("the run's genome FASTA (annotation and coordinates tasks)"),
        "annotation": optional("the run's annotation (GFF3) for annotation tasks"),
        **({"checkpoint": "pretrained MDLM checkpoint"} if pretrained else {})})
    paths(p, **declared)
    return p


def register(sub) -> None:
    """Add ``downstream`` to the parser."""
    ds = verb_group(sub, "downstream", "classification benchmarks of a pretrained model")
    task_verb(ds, "run", "fine-tune, probe, k-mer and from-scratch on one task", run,
              pretrained=True, out={"out_json": None, "out_tsv": None,
                                    "oracle": optional("also save the best fine-tuned "
                                                       "classifier here")})

    q = verb(ds, "table", "one table and plot over tasks", table, config=False, threads=False,
             inputs=("inputs",))
    q.add_argument("--inputs", nargs="+", required=True, help="result JSON of each task")
    paths(q, out={"out_tsv": None, "plot": optional(),
                  "comparison": optional("Markdown: our methods beside the published figures")})


def run(args) -> None:
    """``dnadiff downstream run``: every method on one task, written as JSON and a summary TSV
    (with the oracle classifier, when asked, all or nothing)."""
    from dnadiff.checkpoint import load_checkpoint
    from dnadiff.downstream import SUMMARY_COLUMNS, run_task
    from dnadiff.tasks import load_task, task_spec

    cfg = config(args)
    if not args.task:
        raise DnadiffError("downstream run needs --task")
    ckpt = load_checkpoint(args.checkpoint)
    if ckpt["config"].get("objective") == "ar":
        raise InputFileError(args.checkpoint,
                             "downstream tasks need an MDLM checkpoint (this is AR)")
    task = load_task(task_spec(cfg, args.task, args.genome, args.annotation))
    log.info("task %s: %s", task.name, task.source)
    res = run_task(task, ckpt, cfg["downstream"], cfg["downstream"]["device"], args.oracle)
    res["checkpoint"] = str(args.checkpoint)
    write_outputs({args.out_json: ("json", res),
                   args.out_tsv: ("tsv", res["summary"], SUMMARY_COLUMNS)})
    print(json.dumps(res["summary"]))


def table(args) -> None:
    """``dnadiff downstream table``: one table (and a bar plot of test accuracy and MCC) over
    the tasks' result files, and (``--comparison``, Markdown) our methods beside the published
    figures of each task."""
    from dnadiff.downstream import SUMMARY_COLUMNS, collect_results
    from dnadiff.downstream.published import comparison_markdown

    rows, runs, results = collect_results(args.inputs)
    outputs = {args.out_tsv: ("tsv", rows, SUMMARY_COLUMNS + ["selected"])}
    if args.comparison:
        outputs[args.comparison] = ("text", comparison_markdown(results))

    def plot():
        from dnadiff.evaluation.plots import plot_downstream

        plot_downstream(rows, runs, args.plot)
    write_outputs(outputs, plot if args.plot else None)
