"""Stage 3, generation: ``sample``."""

from __future__ import annotations

from dnadiff.cli.common import add_config, add_threads, config, outputs, set_threads


def register(sub) -> None:
    p = sub.add_parser("sample", help="generate sequences to FASTA")
    add_config(p)
    add_threads(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="output FASTA")
    outputs(p, "out")
    p.set_defaults(handler=sample)


def sample(args) -> None:
    from dnadiff.generation import write_samples

    set_threads(args)
    cfg = config(args)
    write_samples(args.checkpoint, args.out, cfg["sample"], cfg["run"])
