"""Stage 2, training: ``train``, and ``export`` of the model it writes."""

from __future__ import annotations

import json

from dnadiff import io
from dnadiff.cli.common import config, optional, verb


def register(sub) -> None:
    """Add ``train`` and ``export`` to the parser."""
    verb(sub, "train", "train an MDLM on prepared data", train,
         inputs={"data": "prepared data directory"},
         out={"checkpoint": "output checkpoint (.pt)", "metrics": "output metrics.csv",
              "plot": optional("output training-curve PNG")},
         out_dirs={"workdir": "scratch directory for training state"})

    verb(sub, "export", "write a checkpoint as a shareable folder: model.safetensors, "
                        "config.json, README.md (model card)", export, config=False,
         threads=False, inputs={"checkpoint": "checkpoint (.pt or exported folder)"},
         out_dirs={"out": "output folder (new, empty or a dnadiff output)"})


def train(args) -> None:
    """``dnadiff train``."""
    from dnadiff.training import train as fit_prepared

    metrics = fit_prepared(config(args), args.data, args.checkpoint, args.metrics, args.workdir)
    if not metrics.get("rank_zero", True):
        return  # the other ranks of a distributed run write nothing
    if args.plot:
        from dnadiff.evaluation.likelihood import split_entropy_bits
        from dnadiff.evaluation.plots import plot_training

        plot_training(io.written(args.metrics), args.plot,
                      reference_bits=split_entropy_bits(args.data))
    print(json.dumps(metrics))


def export(args) -> None:
    """``dnadiff export``."""
    from dnadiff.export import export_checkpoint

    print(json.dumps(export_checkpoint(args.checkpoint, args.out)))
