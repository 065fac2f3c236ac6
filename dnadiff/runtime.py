"""Device and precision, decided once: every verb asks here which device it runs on and, for
training, which Lightning accelerator and precision it uses."""

from __future__ import annotations

import torch


def device(name: str = "auto") -> torch.device:
    """``auto``: the GPU when one is visible, else the CPU; otherwise the device named."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":  # TF32 tensor cores for whatever autocast leaves in float32
        torch.set_float32_matmul_precision("high")
    return dev


def training_precision(train_cfg: dict) -> tuple[str, str]:
    """(Lightning accelerator, precision) of ``train_cfg``: ``auto`` trains on a GPU when
    there is one, in bf16-mixed where the GPU supports it, else in 32-true."""
    accel = train_cfg["accelerator"]
    if accel == "auto":
        accel = "gpu" if device().type == "cuda" else "cpu"
    prec = train_cfg["precision"]
    if prec == "auto":
        prec = ("bf16-mixed" if accel == "gpu" and torch.cuda.is_bf16_supported()
                else "32-true")
    if accel == "gpu":
        device("cuda")
    return accel, prec
