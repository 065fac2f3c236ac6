"""``dnadiff export``: a checkpoint as the folder model hubs expect, without a pickle.

The folder holds ``model.safetensors`` (the weights under their own names, the EMA weights, when
the checkpoint has them, under ``ema.``), ``config.json`` (every other part of the checkpoint:
the full run config, the tokenizer, the step, the metrics, and how it was exported) and
``README.md``, a model card. :func:`dnadiff.checkpoint.load_checkpoint` reads the folder back
as the dict it returns for the ``.pt`` file, so every verb that takes ``--checkpoint`` takes it.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shlex
import subprocess
from pathlib import Path, PurePosixPath

from dnadiff import __version__
from dnadiff.checkpoint import (
    EMA_PREFIX,
    META_FILE,
    TENSOR_PARTS,
    WEIGHTS_FILE,
    check_weights,
    load_checkpoint,
)
from dnadiff.config import validate_config
from dnadiff.errors import DnadiffError, OutputError
from dnadiff.io import atomic_path

CARD_FILE = "README.md"
#: what the metrics a checkpoint carries mean, for the model card
METRIC_WORDS = {
    "val_bits_per_token": "held-out (validation split) NELBO, bits per token",
    "kept_step": "the step whose weights were kept (best validation)",
    "steps": "training steps", "tokens_seen": "training tokens seen",
    "parameters": "parameters", "train_seconds": "training time, seconds",
    "tokens_per_second": "training speed, tokens per second",
}


def dnadiff_version() -> str:
    """The package version, with ``git describe`` of its source tree when it is a checkout."""
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            done = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=root,
                                  capture_output=True, text=True, timeout=10)
            if done.returncode == 0 and done.stdout.strip():
                return f"{__version__} (git {done.stdout.strip()})"
        except (OSError, subprocess.SubprocessError):
            pass
    return __version__


def _jsonable(obj, where: str):
    """``obj`` as strict JSON values (non-finite floats become null), or a one-line error."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise DnadiffError(f"cannot export: checkpoint entry {where} is a {type(obj).__name__}, "
                       "not a JSON value")


def export_checkpoint(checkpoint, out) -> dict:
    """Write the checkpoint ``checkpoint`` (a ``.pt`` file or an exported folder) as the folder
    ``out``, whole or not at all; return a summary of what was written."""
    from safetensors.torch import save_file

    ckpt = load_checkpoint(checkpoint)
    check_weights(ckpt, checkpoint, checkpoint)
    if any(k.startswith(EMA_PREFIX) for k in ckpt["state_dict"]):
        raise DnadiffError(f"cannot export {checkpoint}: a weight name starts with "
                           f"{EMA_PREFIX!r}, the prefix of the EMA weights")
    tensors = {}
    for part, prefix in TENSOR_PARTS.items():
        for key, value in (ckpt.get(part) or {}).items():
            tensors[prefix + key] = value.detach().cpu().contiguous().clone()  # unshared
    version = dnadiff_version()
    saved = {**ckpt, "tokenizer": ckpt["tokenizer"].to_dict()}  # the tokenizer as it is saved
    meta = {k: _jsonable(v, k) for k, v in saved.items()
            if k not in TENSOR_PARTS and not k.startswith("_")}
    meta["export"] = {"dnadiff": version, "source": Path(checkpoint).name,
                      "weights": WEIGHTS_FILE, "ema": ckpt.get("ema_state_dict") is not None,
                      "ema_prefix": EMA_PREFIX}
    card = model_card(ckpt, version)
    with atomic_path(out, is_dir=True, kind="model export") as tmp:
        _save_weights(save_file, tensors, tmp / WEIGHTS_FILE, out, ckpt["format"])
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp / WEIGHTS_FILE, 0o666 & ~umask)  # safetensors writes it private (0600)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n",
                                     encoding="utf-8")
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
    return {"out": str(out), "step": ckpt["step"], "tensors": len(tensors),
            "ema": meta["export"]["ema"], "parameters": count_parameters(ckpt)}


def _save_weights(save_file, tensors: dict, where: Path, out, fmt: str) -> None:
    """``safetensors.torch.save_file``, its failures (a full disk: "os error 28") as the
    ``OSError`` (naming the temporary file) or :class:`OutputError` (naming ``out``) that
    :func:`dnadiff.io.atomic_path` turns into one line after removing the partial folder."""
    try:
        save_file(tensors, str(where), metadata={"format": "pt", "dnadiff_format": fmt})
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors reports I/O failures as its own type
        if type(exc).__name__ != "SafetensorError":
            raise
        code = re.search(r"os error (\d+)", str(exc))
        if code:
            number = int(code.group(1))
            raise OSError(number, os.strerror(number), str(where)) from None
        first = " ".join((str(exc).splitlines() or [""])[0].split())[:160]
        raise OutputError(out, f"cannot be written (safetensors: {first or 'write failed'})"
                          ) from None


def count_parameters(ckpt: dict) -> int:
    """Values in the floating-point weights (not the EMA copy)."""
    return sum(v.numel() for v in ckpt["state_dict"].values() if v.is_floating_point())


_MD_SPECIAL = re.compile(r"[\\`*\[\]|~]|(?<!\w)_|_(?!\w)")


def _md(value) -> str:
    """``value`` (from a file: anything) as inert Markdown text on one line: HTML tags and
    entities escaped, Markdown's emphasis, code, link and table characters backslashed."""
    text = " ".join(str(value).split())
    text = html.escape(text, quote=False)
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return "n/a" if value is None else _md(value)


def _sh(value) -> str:
    """``value`` as one shell word on one line: ``shlex.quote``, or bash's ``$'...'`` with
    escapes when it holds a line break or another control character (which would end the
    line, and with it the code block of the card)."""
    text = str(value)
    if all(ch.isprintable() for ch in text):
        return shlex.quote(text)
    out = []
    for ch in text:
        if ch in "\\'":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "$'" + "".join(out) + "'"


def _one_line(value) -> str:
    """``value`` on one line, for a comment of the bash block."""
    return " ".join(str(value).split()).replace("`", "'")


def _provenance(ckpt: dict, cfg: dict) -> dict:
    """What the checkpoint records about its training data: ``source`` (the file the data was
    prepared from, or None), ``digest`` (of its index.json), ``held`` (held-out contig names
    per split, or None) and ``named``: whether that file is the one the workflow fetches for
    the config's reference genome (or corpus), so that the config's name for it is true."""
    data = ckpt.get("data") if isinstance(ckpt.get("data"), dict) else {}
    source = data.get("source") if isinstance(data.get("source"), str) else None
    digest = data.get("index_sha256")
    digest = digest if isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest) \
        else None
    held = data.get("held_out")
    held = held if isinstance(held, dict) and all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in held.values()) \
        else None
    named = False
    if source:
        if cfg.get("modality") == "text":
            expected = f"resources/text/{cfg['text']['name']}.txt"
        else:
            expected = f"resources/genomes/{cfg['reference']['name']}/genome.fa"
        path = PurePosixPath(source.replace("\\", "/"))
        named = path.as_posix() == expected or path.as_posix().endswith("/" + expected)
    return {"source": source, "digest": digest, "held": held, "named": named}


def _names(names: list[str], most: int = 10) -> str:
    shown = ", ".join(_md(n) for n in names[:most]) or "none"
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _data_lines(cfg: dict, prov: dict) -> list[str]:
    window, text = cfg["data"]["window"], cfg.get("modality") == "text"
    # what the data is, the config section that names it, what it is read from
    what, section, file, kind = (("corpus", cfg["text"], "text file", "corpus") if text else
                                 ("reference genome", cfg["reference"], "FASTA file", "genome"))
    if prov["source"] is None:
        lines = [f"- {what}: unknown (this checkpoint does not record the data it was "
                 "trained on)"]
    elif prov["named"]:
        lines = [f"- {what}: **{_md(section['name'])}** ({_md(section['source'])}), prepared "
                 f"from {_md(prov['source'])}"]
    else:
        lines = [f"- {what}: the {file} {_md(prov['source'])} (not a {kind} dnadiff fetched by "
                 "name)"]
    if prov["digest"]:
        lines.append(f"- prepared data: index.json sha256 {prov['digest']}")
    if text:
        lines.append(f"- window: {window} tokens, {_md(section['tokenizer'])} tokenizer")
        return lines
    held = prov["held"]
    if held is None:
        lines.append(f"- window: {window} bases; held-out sequences: unknown (not recorded)")
    else:
        lines.append(f"- window: {window} bases; held-out sequences ("
                     + "; ".join(f"{_md(k)}: {_names(v)}" for k, v in held.items()) + ")"
                     + (f"; regions from {_md(cfg['data']['splits']['bed'])}"
                        if prov["named"] and cfg["data"]["splits"].get("bed") else ""))
    return lines


def _reproduce(cfg: dict, version: str, prov: dict) -> str:
    text = cfg.get("modality") == "text"
    flag, name = ("--text", "YOUR_CORPUS.txt") if text else ("--fasta", "YOUR_GENOME.fa")
    if prov["named"] and text:
        fetch = (f"dnadiff fetch-text --source {_sh(cfg['text']['source'])} "
                 "--out corpus.txt --cache-dir downloads\n"
                 "dnadiff prepare --config run.json --text corpus.txt --outdir data")
    elif prov["named"]:
        fetch = (f"dnadiff fetch-reference --source {_sh(cfg['reference']['source'])} "
                 "--outdir genome --cache-dir downloads\n"
                 "dnadiff prepare --config run.json --fasta genome/genome.fa --outdir data")
    elif prov["source"]:
        digest = f" (its index.json had sha256 {prov['digest']})" if prov["digest"] else ""
        fetch = (f"# the data was prepared from this file{digest}\n"
                 f"dnadiff prepare --config run.json {flag} {_sh(prov['source'])} "
                 "--outdir data")
    else:
        fetch = ("# this checkpoint does not record the data it was trained on: give the file "
                 "it was prepared from\n"
                 f"dnadiff prepare --config run.json {flag} {name} --outdir data")
    return ("```bash\n"
            f"# dnadiff {_one_line(version)}\n"
            "python -c \"import json,sys; json.dump(json.load(open('config.json'))['config'], "
            "sys.stdout)\" > run.json\n"
            f"{fetch}\n"
            "dnadiff train --config run.json --data data --checkpoint model.pt "
            "--metrics metrics.csv --workdir train_state\n"
            "dnadiff export --checkpoint model.pt --out exported\n"
            "```\n"
            + ("or the whole workflow: `snakemake --cores 8 --configfile run.json`.\n"
               if prov["named"] else ""))


def model_card(ckpt: dict, version: str) -> str:
    """The ``README.md`` of an exported model: data, reproduction, metrics, loading."""
    cfg = validate_config(ckpt["config"], "the checkpoint's config")  # keys added since
    tok, metrics = ckpt["tokenizer"], ckpt.get("metrics") or {}
    m = cfg["model"]
    kind = {"mdlm": "masked diffusion language model (MDLM)",
            "ar": "autoregressive language model"}.get(cfg.get("objective"), "language model")
    modality = "text" if cfg.get("modality") == "text" else "DNA"
    ema = ckpt.get("ema_state_dict") is not None
    rows = "\n".join(f"| {_md(k)} | {_fmt(v)} | {METRIC_WORDS.get(k, '')} |"
                     for k, v in metrics.items()) or "| (none recorded) | | |"
    tokens = ", ".join(_md(t) for t in tok.tokens[:8]) + (", ..." if tok.vocab_size > 8 else "")
    weights = f"`{WEIGHTS_FILE}`" + (f"; the EMA weights (used by default) under "
                                     f"`{EMA_PREFIX}`" if ema else "")
    tags = "text" if modality == "text" else "dna, genomics"
    prov = _provenance(ckpt, cfg)
    data = "\n".join(_data_lines(cfg, prov))
    return f"""---
library_name: dnadiff
tags: [dnadiff, {tags}, {cfg.get('objective')}]
---

# {_md(cfg['run'])}: a {modality} {kind}

Trained with dnadiff ({cfg.get('objective')} objective) and exported with dnadiff {version}.
Step {ckpt['step']}; {count_parameters(ckpt):,} parameters.

## Data

{data}

## Model

- backbone: `{m['backbone']}`, dim {m['dim']}, {m['layers']} layers, {m['heads']} heads
- tokenizer: {tok.vocab_size} tokens ({tokens})
- weights: {weights}
- everything else (full run config, tokenizer, step, metrics): `{META_FILE}`

## Held-out metrics

The metrics this checkpoint carries (recorded when it was trained):

| metric | value | meaning |
|---|---|---|
{rows}

## Reproduce

{_reproduce(cfg, version, prov)}
## Load

```bash
dnadiff sample --config run.json --checkpoint THIS_FOLDER --out samples.fa
```

```python
from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint

model, objective, tokenizer = model_from_checkpoint(load_checkpoint("THIS_FOLDER"))
```

Every dnadiff verb that takes `--checkpoint` takes this folder. The weights alone, without
dnadiff: `safetensors.torch.load_file("{WEIGHTS_FILE}")` (no pickle, no code runs).
"""
