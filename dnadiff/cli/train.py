"""Stage 2, training: ``train``, and ``export`` of the model it writes."""

from __future__ import annotations

import json

from dnadiff import io
from dnadiff.cli.common import config, verb


def register(sub) -> None:
    """Add ``train`` and ``export`` to the parser."""
    p = verb(sub, "train", "train an MDLM on prepared data", train,
             out=("checkpoint", "metrics", "plot"), out_dirs=("workdir",), inputs=("data",))
    p.add_argument("--data", required=True, help="prepared data directory")
    p.add_argument("--checkpoint", required=True, help="output checkpoint (.pt)")
    p.add_argument("--metrics", required=True, help="output metrics.csv")
    p.add_argument("--plot", help="output training-curve PNG")
    p.add_argument("--workdir", required=True, help="scratch directory for training state")

    p = verb(sub, "export", "write a checkpoint as a shareable folder: model.safetensors, "
                            "config.json, README.md (model card)", export, config=False,
             threads=False, out_dirs=("out",), inputs=("checkpoint",))
    p.add_argument("--checkpoint", required=True, help="checkpoint (.pt or exported folder)")
    p.add_argument("--out", required=True, help="output folder (new, empty or a dnadiff output)")


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
