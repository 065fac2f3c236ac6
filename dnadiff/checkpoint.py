"""The dnadiff checkpoint: weights + the full config + tokenizer, loaded with weights_only=True.

A checkpoint from the internet must not be able to run code, so it holds tensors and plain
Python containers only, and is always read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dnadiff.errors import InputFileError
from dnadiff.io import atomic_path

FORMAT = "dnadiff-checkpoint"
VERSION = 1


def save_checkpoint(path, model, config: dict, tokenizer: dict, step: int,
                    metrics: dict | None = None) -> None:
    state = {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "config": config, "tokenizer": tokenizer,
               "step": int(step), "metrics": metrics or {}, "state_dict": state}
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


def model_from_checkpoint(ckpt: dict):
    """Rebuild (backbone, MDLM objective, tokenizer dict) from a loaded checkpoint."""
    from dnadiff.diffusion.mdlm import MDLM
    from dnadiff.diffusion.schedule import build_schedule
    from dnadiff.models import build_backbone

    cfg, tok = ckpt["config"], ckpt["tokenizer"]
    vocab = len(tok["tokens"])
    model = build_backbone(cfg["model"], vocab, cfg["data"]["window"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    mdlm = MDLM(build_schedule(cfg["diffusion"]), tok["mask_id"], tok["generable_ids"], vocab,
                time_conditioning=cfg["model"]["time_conditioning"])
    return model, mdlm, tok
