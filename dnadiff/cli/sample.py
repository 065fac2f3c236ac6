"""Stage 3, generation: ``sample``."""

from __future__ import annotations

from dnadiff.cli.common import config, verb


def register(sub) -> None:
    """Add ``sample`` to the parser."""
    verb(sub, "sample", "generate sequences to FASTA", sample, inputs={"checkpoint": None},
         out={"out": "output FASTA"})


def sample(args) -> None:
    """``dnadiff sample``."""
    from dnadiff.generation import write_samples

    cfg = config(args)
    write_samples(args.checkpoint, args.out, cfg["sample"], cfg["run"])
