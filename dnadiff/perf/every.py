"""``dnadiff bench all``: every figure, each in a process of its own (so that each peak memory
is its own), written to ``<out>/<name>.json`` with the ``dnadiff bench`` command that
reproduces it."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from dnadiff.config import validate_config
from dnadiff.errors import DnadiffError
from dnadiff.perf.common import load_preset
from dnadiff.perf.loader import bench_loader
from dnadiff.perf.sampler import bench_sampler
from dnadiff.perf.tokens import bench_tokenize
from dnadiff.perf.train_step import bench_train_preset

#: figure -> (function, {its keyword: the ``dnadiff bench <figure>`` option when the names
#: differ})
FIGURES = {
    "tokenize": (bench_tokenize, {}),
    "loader": (bench_loader, {}),
    "train": (bench_train_preset, {"cfg": "config-json"}),
    "sampler": (bench_sampler, {"cfg": "config-json", "batches": "batch"}),
}


def as_command(figure: str, options: dict) -> str:
    """The ``dnadiff bench`` command line of a figure run with ``options``."""
    aliases = FIGURES[figure][1]
    words = ["dnadiff", "bench", figure]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + aliases.get(key, key).replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, dict):
            words += [flag, json.dumps(value, separators=(",", ":"))]
        elif isinstance(value, (list, tuple)):
            words += [flag, ",".join(map(str, value))]
        else:
            words += [flag, str(value)]
    return " ".join(words)


def plan(device: str, tiny: bool, fasta=None) -> list[tuple[str, str, dict]]:
    """(name, figure, options) of every figure: GPU sizes (dit-small and the Caduceus 1k model
    in bf16 at L = 1024, the sampler at steps = L = 1024, batch 1 and 64) on ``cuda``; tiny
    models on ``cpu``; ``tiny`` shrinks everything (a check that each figure is produced, as CI
    runs it)."""
    genome = {"fasta": str(fasta)} if fasta else {}
    dev = {"device": device}
    if tiny:
        length = 64
        figures = [("tokenize", "tokenize", {**genome, "megabases": 0.5, "reps": 1,
                                             "baseline_megabases": 0.1}),
                   ("loader", "loader", {**genome, "megabases": 0.5, "window": 256, "batch": 8,
                                         "batches": 5, "workers": [0, 1]})]
        trains = [(f"train-{p}", {"preset": p, "batch": 2, "steps": 2, "warmup": 1})
                  for p in ("tiny-dit", "tiny-caduceus")]
        cfg = {"run": "bench", "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16}}
        samplers = [("sampler", {"cfg": cfg, "length": length, "steps": length,
                                 "batches": [1, 4]})]
    else:
        length = 1024
        figures = [("tokenize", "tokenize", genome), ("loader", "loader", dict(genome))]
        if device == "cuda":
            trains = [("train-dit-small", {"preset": "dit-small", "batch": 32}),
                      ("train-dit-small-compiled", {"preset": "dit-small", "batch": 32,
                                                    "compile": True}),
                      ("train-caduceus-1k", {"preset": "caduceus-1k", "batch": 128})]
            model = load_preset("dit-small")
        else:
            trains = [(f"train-{p}", {"preset": p, "batch": 8})
                      for p in ("tiny-dit", "tiny-caduceus")]
            model = load_preset("tiny-dit")
        cfg = {"run": "bench", "model": {k: v for k, v in model.items() if k != "backbone"}}
        samplers = [("sampler", {"cfg": cfg, "length": 1024, "steps": 1024,
                                 "batches": [1, 64] if device == "cuda" else [1]})]
        if device != "cuda":  # batch 64 at L = 1024 takes about 20 minutes on 2 CPU cores
            samplers.append(("sampler-batch64", {"cfg": cfg, "length": 256, "steps": 256,
                                                 "batches": [64]}))
    return [*figures,
            *[(name, "train", {**opts, "length": length, **dev}) for name, opts in trains],
            *[(name, "sampler", {**opts, **dev}) for name, opts in samplers]]


def _figure(figure: str, options: dict) -> dict:
    """One figure (in the spawned process): its config, if any, validated as the CLI does."""
    if figure in ("train", "sampler"):
        options = dict(options, cfg=validate_config(options.get("cfg") or {"run": "bench"},
                                                    "--config-json"))
    return FIGURES[figure][0](**options)


def _child(send, figure: str, options: dict) -> None:
    """A figure's process: send back ("ok", result) or ("error", what went wrong)."""
    try:
        send.send(("ok", _figure(figure, options)))
    except Exception as exc:  # noqa: BLE001 - reported by the parent as the figure's failure
        send.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


def bench_all(outdir, device: str = "cpu", tiny: bool = False, fasta=None, log=None) -> dict:
    """Run every figure of :func:`plan` in its own process, write ``<outdir>/<name>.json`` and
    return them all; the loader's headroom is over the first training figure's tokens/s."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results = {}
    figures = plan(device, tiny, fasta)
    trains = [name for name, figure, _ in figures if figure == "train"]
    ordered = [f for f in figures if f[1] != "loader"] + [f for f in figures if f[1] == "loader"]
    spawn = multiprocessing.get_context("spawn")
    for name, figure, options in ordered:
        if figure == "loader" and trains:
            options = {**options,
                       "consumer_tokens_per_second": results[trains[0]]["tokens_per_second"]}
        command = as_command(figure, options)
        if log:
            log(f"bench {name}: {command}")
        receive, send = spawn.Pipe(duplex=False)
        child = spawn.Process(target=_child, args=(send, figure, options))
        child.start()
        send.close()
        try:
            status, result = receive.recv()
        except EOFError:
            status, result = "error", "the process died"
        child.join()
        if status != "ok":
            raise DnadiffError(f"bench {name} failed: {result}")
        results[name] = {**result, "command": command}
        (outdir / f"{name}.json").write_text(json.dumps(results[name], indent=1) + "\n")
    return results
