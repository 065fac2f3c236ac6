"""The dnadiff checkpoint: weights + the full config + tokenizer, loaded with weights_only=True.

A checkpoint from the internet must not be able to run code, so it holds tensors and plain
Python containers only, and is always read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from dnadiff.errors import InputFileError
from dnadiff.io import atomic_path

log = logging.getLogger(__name__)
FORMAT = "dnadiff-checkpoint"
VERSION = 1


def _cpu_state(state: dict) -> dict:
    return {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
            for k, v in state.items()}


def save_checkpoint(path, model, config: dict, tokenizer: dict, step: int,
                    metrics: dict | None = None, ema_state: dict | None = None) -> None:
    """Write weights (+ EMA weights when given), the full config and the tokenizer."""
    payload = {"format": FORMAT, "version": VERSION, "config": config, "tokenizer": tokenizer,
               "step": int(step), "metrics": metrics or {},
               "state_dict": _cpu_state(model.state_dict())}
    if ema_state is not None:
        payload["ema_state_dict"] = _cpu_state(ema_state)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "checkpoint not found")
    if path.is_dir():
        raise InputFileError(path, "is a directory, expected a checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read an untrusted file is "corrupt"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(path, f"corrupt or unsafe checkpoint ({first[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputFileError(path, "not a dnadiff checkpoint")
    if ckpt.get("version") != VERSION:
        raise InputFileError(path, f"checkpoint version {ckpt.get('version')} is not supported "
                                   f"(this dnadiff reads version {VERSION})")
    return ckpt


def model_from_checkpoint(ckpt: dict, use_ema: bool = True, rc_conjoin: bool | None = None):
    """Rebuild (backbone in eval mode, objective, tokenizer dict) from a loaded checkpoint.

    The EMA weights are used when the checkpoint has them (unless ``use_ema`` is False).
    ``rc_conjoin`` overrides the trained ``model.rc_conjoin`` (None keeps it; it never applies
    to caduceus, equivariant already, or to an AR checkpoint, which must stay causal). A checkpoint
    trained with ``scan_impl: cuda`` loads with ``auto`` where the mamba-ssm kernels are missing.
    """
    from dnadiff.config import validate_config
    from dnadiff.diffusion import build_objective
    from dnadiff.models import build_backbone
    from dnadiff.models.scan import mamba_ssm_status

    cfg = validate_config(ckpt["config"], "checkpoint config")  # fills keys added since
    tok = ckpt["tokenizer"]
    model_cfg = dict(cfg["model"])
    if rc_conjoin is not None and model_cfg["backbone"] != "caduceus":
        model_cfg["rc_conjoin"] = rc_conjoin
    if model_cfg["scan_impl"] == "cuda" and not mamba_ssm_status()[0]:
        log.info("checkpoint was trained with scan_impl cuda; the mamba-ssm kernels are not "
                 "usable here (%s): using the pure-PyTorch scan", mamba_ssm_status()[1])
        model_cfg["scan_impl"] = "auto"
    objective = build_objective(cfg, tok)
    model = build_backbone(model_cfg, len(tok["tokens"]), cfg["data"]["window"],
                           causal=objective.causal, complement=tok.get("complement"))
    state = ckpt.get("ema_state_dict") if use_ema else None
    model.load_state_dict(state if state is not None else ckpt["state_dict"])
    model.eval()
    return model, objective, tok
