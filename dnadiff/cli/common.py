"""What every stage of the command line shares: config and thread options, output files.

The stage modules import their part of the library inside each handler, deliberately: a
``dnadiff <verb>`` process then loads only what that verb uses (torch, Lightning, scikit-learn
and matplotlib each take seconds to import).
"""

from __future__ import annotations

import copy

from dnadiff import io, ownership
from dnadiff.config import load_config
from dnadiff.errors import DnadiffError
from dnadiff.schema import input_paths


def add_config(p) -> None:
    """The ``--config`` and ``--config-json`` options."""
    p.add_argument("--config", help="YAML config file (validated; defaults filled)")
    p.add_argument("--config-json", help="JSON config (merged over --config)")


def add_threads(p) -> None:
    """The ``--threads`` option."""
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")


class _Optional(str):
    """The help text of a path option that may be left out."""


def optional(help: str | None = None) -> str:
    """The help text of a path option of :func:`paths` that may be left out (the others are
    required)."""
    return _Optional(help or "")


def paths(p, *, inputs: dict | tuple = (), out: dict | tuple = (),
          out_dirs: dict | tuple = ()) -> None:
    """Declare the options naming a verb's input paths, its output files and its output folders
    (checked before the work starts: :func:`check_paths`). Each is a mapping ``dest: help``
    whose options are added here, in that order (help ``None``: none; a required option unless
    the help is :func:`optional`), or a tuple of the dests of options the caller adds itself (a
    default, ``nargs``, a group)."""
    for role, declared in (("inputs", inputs), ("outputs", out), ("output_dirs", out_dirs)):
        if isinstance(declared, dict):
            for dest, text in declared.items():
                p.add_argument(option(dest), required=not isinstance(text, _Optional),
                               help=text or None)
        p.set_defaults(**{role: (*(p.get_default(role) or ()), *declared)})


def verb(sub, name: str, help: str, handler, *, config: bool = True, threads: bool = True,
         inputs: dict | tuple = (), out: dict | tuple = (), out_dirs: dict | tuple = ()):
    """A verb's parser with its handler, the config (and thread) options unless told otherwise,
    and the options naming its input paths, output files and output folders (:func:`paths`;
    the config file is an input): no output may equal, contain or sit inside an input or
    another output (checked before the work starts)."""
    p = sub.add_parser(name, help=help)
    p.set_defaults(handler=handler)
    if config:
        add_config(p)
        p.set_defaults(config_inputs=True, inputs=("config",))
    if threads:
        add_threads(p)
    paths(p, inputs=inputs, out=out, out_dirs=out_dirs)
    return p


def verb_group(sub, name: str, help: str, **defaults):
    """A verb with verbs of its own (``dnadiff <name> <what>``): the subparsers to add them to
    with :func:`verb` (``defaults``: settings every one of them shares)."""
    p = sub.add_parser(name, help=help)
    p.set_defaults(**defaults)
    return p.add_subparsers(dest="what", required=True)


def option(dest: str) -> str:
    """The command-line spelling of an option's ``dest``."""
    return "--" + dest.replace("_", "-")


def check_paths(args) -> None:
    """Output files must be writable; no output may equal, contain or sit inside an input (an
    option's or a file the config names) or another output."""
    files = getattr(args, "outputs", ())
    io.preflight(*(getattr(args, dest, None) for dest in files))
    named = lambda dests: {option(d): getattr(args, d, None) for d in dests}  # noqa: E731
    inputs = named(getattr(args, "inputs", ()))
    if getattr(args, "config_inputs", False):  # the files the config names (tasks, prompts)
        try:
            cfg = config(args)
        except DnadiffError:
            cfg = {}  # the verb reports a bad config itself, after its own argument checks
        inputs.update({f"{where} of the config": path
                       for where, path in input_paths(cfg).items()})
    ownership.check_paths(inputs, named((*files, *getattr(args, "output_dirs", ()))))


def config(args) -> dict:
    """The validated run config of ``args`` (read once: a deprecation warning is logged once
    although the path checks read it before the verb)."""
    if getattr(args, "loaded_config", None) is None:
        args.loaded_config = load_config(args.config, args.config_json)
    return copy.deepcopy(args.loaded_config)


def set_threads(args) -> None:
    """Apply ``--threads`` to PyTorch (before every verb's handler: :func:`dnadiff.cli.run`)."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def int_list(text: str, flag: str, minimum: int = 1) -> list[int]:
    """``--flag 1,2,3`` as integers of at least ``minimum``, or a one-line error."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise DnadiffError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < minimum:
        raise DnadiffError(f"{flag}: every value must be at least {minimum} ({text!r})")
    return values


def columns(rows: list[dict]) -> list[str]:
    """Every key of the rows, in first-seen order (rows may have different keys)."""
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def write_outputs(outputs: dict, plot=None) -> None:
    """Write each output and call ``plot``; the verb's transaction publishes them all together
    or none. ``outputs`` maps a path to ``("json", object)``, ``("tsv", rows)`` (columns: every
    key of the rows) or ``("tsv", rows, columns)``, ``("fasta", [(header, sequence)])`` (one
    line each) or ``("text", str)``."""
    for path, (kind, obj, *cols) in outputs.items():
        if kind == "json":
            io.write_json(path, obj)
        elif kind == "tsv":
            io.write_tsv(path, obj, cols[0] if cols else columns(obj))
        elif kind == "fasta":
            with io.atomic_open(path) as fh:
                for header, seq in obj:
                    fh.write(f">{header}\n{seq}\n")
        elif kind == "text":
            with io.atomic_open(path) as fh:
                fh.write(obj)
        else:
            raise ValueError(f"write_outputs: unknown kind {kind!r} for {path}")
    if plot:
        plot()
