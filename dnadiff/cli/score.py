"""Stage 4, scoring given sequences and variants: ``score sequences | variants``."""

from __future__ import annotations

import sys

from dnadiff.cli.common import config, verb, verb_group, write_outputs


def register(sub) -> None:
    """Add ``score`` and its two verbs to the parser."""
    sc = verb_group(sub, "score", "score given sequences or variants with a trained model")
    verb(sc, "sequences", "per-sequence bits per base (with their standard error) of the "
         "records of a FASTA file", sequences,
         inputs={"checkpoint": "a checkpoint or an export folder",
                 "fasta": "FASTA (or GenBank) file, plain or gzip"},
         out={"out": "output TSV, one row per record"})

    q = verb(sc, "variants", "log p(alt) - log p(ref) of every single-nucleotide variant of a "
             "VCF, given a window of the reference around it", variants,
             inputs={"checkpoint": "a checkpoint or an export folder",
                     "vcf": "VCF, plain or bgzip",
                     "reference": "the reference genome (FASTA, plain or gzip) the VCF's "
                                  "positions refer to"},
             out={"out": "output TSV, one row per variant (and ALT)"})
    q.add_argument("--window", type=int, help="bases of context (default: score.window)")
    q.add_argument("--both-strands", action="store_true", default=None,
                   help="average with the reverse-complement strand (score.both_strands)")
    q.add_argument("--info", action="store_true", default=None,
                   help="copy the VCF INFO field into the TSV (score.info)")


def score_config(args, **flags) -> dict:
    """The ``score`` section of the run config (the schema's defaults without ``--config`` or
    ``--config-json``), with the command-line ``flags`` that were given over it (validated as
    config keys)."""
    from dnadiff.config import validate_config

    section = config(args)["score"] if args.config or args.config_json else {}
    section.update({k: v for k, v in flags.items() if v is not None})
    return validate_config({"run": "score", "score": section}, "score options")["score"]


def sequences(args) -> None:
    """``dnadiff score sequences``."""
    from dnadiff.evaluation.sequence_likelihood import SEQUENCE_COLUMNS, score_fasta

    rows = score_fasta(args.checkpoint, args.fasta, score_config(args))
    write_outputs({args.out: ("tsv", rows, SEQUENCE_COLUMNS)})
    print(f"scored {len(rows)} sequence(s)", file=sys.stderr)


def variants(args) -> None:
    """``dnadiff score variants``."""
    from dnadiff.evaluation.variants import VARIANT_COLUMNS, score_vcf

    cfg = score_config(args, window=args.window, both_strands=args.both_strands,
                       info=args.info)
    rows = score_vcf(args.checkpoint, args.vcf, args.reference, cfg)
    columns = [c for c in VARIANT_COLUMNS if any(c in r for r in rows)]
    write_outputs({args.out: ("tsv", rows, columns)})
    print(f"scored {len(rows)} variant(s)", file=sys.stderr)
