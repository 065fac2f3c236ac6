"""``dnadiff export``: a checkpoint as the folder model hubs expect, without a pickle.

The folder holds ``model.safetensors`` (the weights under their own names, the EMA weights, when
the checkpoint has them, under ``ema.``), ``config.json`` (every other part of the checkpoint:
the full run config, the tokenizer, the step, the metrics, and how it was exported) and
``README.md``, a model card. :func:`dnadiff.checkpoint.load_checkpoint` reads the folder back
as the dict it returns for the ``.pt`` file, so every verb that takes ``--checkpoint`` takes it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

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
from dnadiff.errors import DnadiffError
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
    meta = {k: _jsonable(v, k) for k, v in ckpt.items()
            if k not in TENSOR_PARTS and not k.startswith("_")}
    meta["export"] = {"dnadiff": version, "source": Path(checkpoint).name,
                      "weights": WEIGHTS_FILE, "ema": ckpt.get("ema_state_dict") is not None,
                      "ema_prefix": EMA_PREFIX}
    with atomic_path(out, is_dir=True, kind="model export") as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE),
                  metadata={"format": "pt", "dnadiff_format": ckpt["format"]})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp / WEIGHTS_FILE, 0o666 & ~umask)  # safetensors writes it private (0600)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n",
                                     encoding="utf-8")
        (tmp / CARD_FILE).write_text(model_card(ckpt, version), encoding="utf-8")
    return {"out": str(out), "step": ckpt["step"], "tensors": len(tensors),
            "ema": meta["export"]["ema"], "parameters": count_parameters(ckpt)}


def count_parameters(ckpt: dict) -> int:
    """Values in the floating-point weights (not the EMA copy)."""
    return sum(v.numel() for v in ckpt["state_dict"].values() if v.is_floating_point())


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)


def _data_lines(cfg: dict) -> list[str]:
    window = cfg["data"]["window"]
    if cfg.get("modality") == "text":
        t = cfg["text"]
        return [f"- corpus: **{t['name']}** (`{t['source']}`), {t['tokenizer']} tokenizer",
                f"- window: {window} tokens; held out: the last {t['validation_fraction']:g} "
                f"(validation) and {t['test_fraction']:g} (test) of the documents"]
    ref, sp = cfg["reference"], cfg["data"]["splits"]
    held = ", ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in sp.items()
                     if k in ("validation", "test"))
    return [f"- reference genome: **{ref['name']}** (`{ref['source']}`)",
            f"- window: {window} bases; held-out sequences ({held})"
            + (f"; regions from `{sp['bed']}`" if sp.get("bed") else "")]


def _reproduce(cfg: dict, version: str) -> str:
    if cfg.get("modality") == "text":
        fetch = (f"dnadiff fetch-text --source {cfg['text']['source']} --out corpus.txt "
                 "--cache-dir downloads\n"
                 "dnadiff prepare --config run.json --text corpus.txt --outdir data")
    else:
        fetch = (f"dnadiff fetch-reference --source {cfg['reference']['source']} "
                 "--outdir genome --cache-dir downloads\n"
                 "dnadiff prepare --config run.json --fasta genome/genome.fa --outdir data")
    return ("```bash\n"
            f"# dnadiff {version}\n"
            "python -c \"import json,sys; json.dump(json.load(open('config.json'))['config'], "
            "sys.stdout)\" > run.json\n"
            f"{fetch}\n"
            "dnadiff train --config run.json --data data --checkpoint model.pt "
            "--metrics metrics.csv --workdir train_state\n"
            "dnadiff export --checkpoint model.pt --out exported\n"
            "```\n"
            "or the whole workflow: `snakemake --cores 8 --configfile run.json`.\n")


def model_card(ckpt: dict, version: str) -> str:
    """The ``README.md`` of an exported model: data, reproduction, metrics, loading."""
    cfg = validate_config(ckpt["config"], "the checkpoint's config")  # keys added since
    tok, metrics = ckpt["tokenizer"], ckpt.get("metrics") or {}
    m = cfg["model"]
    kind = {"mdlm": "masked diffusion language model (MDLM)",
            "ar": "autoregressive language model"}.get(cfg.get("objective"), "language model")
    modality = "text" if cfg.get("modality") == "text" else "DNA"
    ema = ckpt.get("ema_state_dict") is not None
    rows = "\n".join(f"| `{k}` | {_fmt(v)} | {METRIC_WORDS.get(k, '')} |"
                     for k, v in metrics.items()) or "| (none recorded) | | |"
    tokens = ", ".join(tok["tokens"][:8]) + (", ..." if len(tok["tokens"]) > 8 else "")
    weights = f"`{WEIGHTS_FILE}`" + (f"; the EMA weights (used by default) under "
                                     f"`{EMA_PREFIX}`" if ema else "")
    tags = "text" if modality == "text" else "dna, genomics"
    data = "\n".join(_data_lines(cfg))
    return f"""---
library_name: dnadiff
tags: [dnadiff, {tags}, {cfg.get('objective')}]
---

# {cfg['run']}: a {modality} {kind}

Trained with dnadiff ({cfg.get('objective')} objective) and exported with dnadiff {version}.
Step {ckpt['step']}; {count_parameters(ckpt):,} parameters.

## Data

{data}

## Model

- backbone: `{m['backbone']}`, dim {m['dim']}, {m['layers']} layers, {m['heads']} heads
- tokenizer: {len(tok['tokens'])} tokens ({tokens})
- weights: {weights}
- everything else (full run config, tokenizer, step, metrics): `{META_FILE}`

## Held-out metrics

The metrics this checkpoint carries (recorded when it was trained):

| metric | value | meaning |
|---|---|---|
{rows}

## Reproduce

{_reproduce(cfg, version)}
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
