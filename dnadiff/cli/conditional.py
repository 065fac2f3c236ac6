"""Stage 6, class-conditional generation: ``conditional train | sample | score``."""

from __future__ import annotations

import json

from dnadiff.cli.common import config, optional, verb, verb_group, write_outputs
from dnadiff.cli.downstream import task_verb
from dnadiff.errors import DnadiffError

#: the leading columns of the agreement table (then ``frac_<class>`` and ``train_copy_rate``)
AGREEMENT_COLUMNS_HEAD = ["source", "requested", "guidance", "n", "agreement"]


def register(sub) -> None:
    """Add ``conditional`` to the parser."""
    cd = verb_group(sub, "conditional", "class-conditional MDLM with classifier-free guidance")
    task_verb(cd, "train", "train on conditional.task from a pretrained MDLM", train,
              pretrained=True, out={"out": "output checkpoint", "metrics": "output metrics.csv"},
              out_dirs={"workdir": None})
    verb(cd, "sample", "samples per class and guidance weight, and unconditional", sample,
         inputs={"checkpoint": "conditional checkpoint"}, out={"out": "output FASTA"})
    task_verb(cd, "score", "oracle agreement per class", score,
              inputs={"samples": None, "oracle": "classifier checkpoint (downstream run --oracle)"},
              out={"out_tsv": None, "plot": optional()})


def _config(args) -> dict:
    """The run config, ``--task`` over ``conditional.task``."""
    cfg = config(args)
    if getattr(args, "task", None):
        cfg["conditional"]["task"] = args.task
    return cfg


def _task(cfg: dict, args):
    """The task ``conditional.task`` of ``cfg``, read (with the run's genome and annotation)."""
    from dnadiff.tasks import load_task, task_spec

    name = cfg["conditional"]["task"]
    if name is None:
        raise DnadiffError("key 'conditional.task' is not set")
    return load_task(task_spec(cfg, name, args.genome, args.annotation))


def train(args) -> None:
    """``dnadiff conditional train``: the task read, then the conditional model trained."""
    from dnadiff.checkpoint import load_checkpoint
    from dnadiff.conditional import train_conditional

    cfg = _config(args)
    task = _task(cfg, args)
    print(json.dumps(train_conditional(task, load_checkpoint(args.checkpoint), cfg, args.out,
                                       args.metrics, args.workdir)))


def sample(args) -> None:
    """``dnadiff conditional sample``: every (class, guidance) group and the unconditional
    group in one FASTA."""
    from dnadiff.checkpoint import load_checkpoint
    from dnadiff.conditional import sample_records

    cfg = _config(args)
    records = list(sample_records(load_checkpoint(args.checkpoint), cfg, cfg["sample"]["seed"]))
    write_outputs({args.out: ("fasta", records)})
    print(json.dumps({"samples": len(records)}))


def score(args) -> None:
    """``dnadiff conditional score``: oracle agreement of the samples per class (TSV, plot)."""
    from dnadiff.conditional import score_samples

    cfg = _config(args)
    task = _task(cfg, args)
    rows = score_samples(task, args.samples, args.oracle)
    classes = list(task.classes)
    cols = AGREEMENT_COLUMNS_HEAD + [f"frac_{c}" for c in classes] + ["train_copy_rate"]

    def plot():
        from dnadiff.evaluation.plots import plot_oracle_agreement

        plot_oracle_agreement(rows, classes, args.plot)
    write_outputs({args.out_tsv: ("tsv", rows, cols)}, plot if args.plot else None)
    print(json.dumps(rows))
