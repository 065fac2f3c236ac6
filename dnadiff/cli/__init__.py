"""The ``dnadiff`` command line: a thin layer over the library, one module per stage.

Every verb takes the run configuration as ``--config FILE`` and/or ``--config-json JSON``
(validated against the one schema, defaults filled). User errors print one line
``dnadiff: error: ...`` and exit with status 2, leaving no partial output behind: each verb runs
inside one all-or-nothing transaction of its outputs (``dnadiff.io``), whose paths are checked
before the work starts.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from dnadiff import __version__, io
from dnadiff.cli import (
    bench,
    conditional,
    data,
    downstream,
    evaluate,
    probe,
    report,
    sample,
    score,
    train,
)
from dnadiff.cli.common import check_paths, set_threads
from dnadiff.errors import user_message

#: the stages, in the order of the flow (and of ``dnadiff --help``)
STAGES = (data, train, sample, bench, evaluate, score, probe, downstream, conditional, report)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb, stage by stage."""
    ap = argparse.ArgumentParser(prog="dnadiff", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"dnadiff {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="verb", required=True)
    for stage in STAGES:
        stage.register(sub)
    return ap


class _DropAdverts(logging.Filter):
    def filter(self, record):
        return "Tip:" not in record.getMessage()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric"):
        # Lightning prints through a handler of its own: do not print its lines a second time
        logging.getLogger(name).propagate = False
        logging.getLogger(f"{name}.utilities.rank_zero").addFilter(_DropAdverts())


def run(args) -> None:
    """Check the verb's output paths, apply ``--threads``, then run its handler."""
    check_paths(args)
    set_threads(args)
    args.handler(args)


def main(argv=None) -> int:
    """Parse, run the verb inside one all-or-nothing transaction of outputs, and turn any
    user-facing failure into one line on stderr with exit status 2."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    # a verb's outputs are published together, except where its parser says otherwise (bench:
    # each figure, and its scratch data, as soon as it is measured)
    together = getattr(args, "all_or_nothing", True)
    whole = io.all_or_nothing() if together else contextlib.nullcontext()
    try:
        with whole:
            run(args)
    except KeyboardInterrupt:
        print("dnadiff: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - user errors become one line; bugs re-raise
        message = user_message(exc)
        if message is None:
            raise
        print(f"dnadiff: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
