"""Whole training steps as ``dnadiff train`` runs them (the same Lightning module and step:
the objective's loss under the run's precision, backward, gradient clipping, AdamW fused on a
GPU with its schedule, the EMA update), on random tokens already on the device: tokens/s, model
FLOPs per step and MFU."""

from __future__ import annotations

import statistics
import time

import lightning as L
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from dnadiff import runtime
from dnadiff.config import validate_config
from dnadiff.diffusion import build_objective
from dnadiff.models import build_backbone
from dnadiff.models.registry import BACKBONES
from dnadiff.models.scan import resolve_scan_impl
from dnadiff.perf.common import (
    load_preset,
    machine_name,
    measured_matmul_flops,
    peak_flops,
    peak_memory,
)
from dnadiff.tokenizers import DNATokenizer
from dnadiff.training import DenoiserModule


def count_training_flops(objective, model, length: int, device) -> int:
    """FLOPs of one training step (loss forward and backward) on one sequence, counted by
    ``torch.utils.flop_counter`` with attention in its matmul form (matmuls, convolutions and
    attention; elementwise work such as the selective scan's recurrence is not counted, as in
    the usual MFU)."""
    x = torch.zeros((1, length), dtype=torch.long, device=device)  # any tokens: same FLOPs
    keep = torch.ones_like(x, dtype=torch.bool)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        objective.loss(model, x, keep).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


class _StepTimer(L.Callback):
    """Seconds of each optimizer step (the device synchronized at both ends)."""

    def __init__(self, device: torch.device):
        self.device, self.times, self._t0 = device, [], None

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._sync()
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self._sync()
        self.times.append(time.perf_counter() - self._t0)


def bench_train(model_cfg: dict, cfg: dict, length: int, batch: int, steps: int = 10,
                warmup: int = 3, device: str = "cpu", dtype: str = "auto",
                compile: bool = False, peak_tflops: float | None = None, seed: int = 0,
                label: str | None = None) -> dict:
    """``steps`` timed training steps after ``warmup`` untimed ones, through the training
    module and Lightning loop of ``dnadiff train`` (data loading aside: one batch of random
    tokens, already on the device). Reports the median step time, tokens/s, the model FLOPs
    per step (:func:`count_training_flops`, pure-PyTorch scan) and MFU. ``dtype``: ``auto``
    (bf16 on a GPU, fp32 on a CPU), ``bf16`` or ``fp32``."""
    dev = runtime.device(device)
    if dtype == "auto":  # as dnadiff train: bf16 autocast on a GPU, fp32 on a CPU
        dtype = "bf16" if dev.type == "cuda" else "fp32"
    tok = DNATokenizer()
    run_cfg = validate_config({**cfg, "model": model_cfg, "compare_ar": False,
                               "objective": "mdlm",
                               "train": {**cfg.get("train", {}), "steps": steps + warmup,
                                         "compile": compile}}, "bench config")
    mc = run_cfg["model"]
    objective = build_objective(run_cfg, tok)
    torch.manual_seed(seed)
    counting = build_backbone({**mc, "scan_impl": "torch"}, tok.vocab_size,
                              complement=tok.complement).to(dev)
    flops = count_training_flops(objective, counting, length, dev) * batch
    del counting
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)  # the training steps' own peak
    torch.manual_seed(seed)
    module = DenoiserModule(run_cfg, tok)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.tensor(tok.generable_ids)
    x = ids[torch.randint(0, len(ids), (batch, length), generator=gen)].to(dev)
    item = {"tokens": x, "loss_mask": torch.ones_like(x, dtype=torch.bool)}
    timer = _StepTimer(dev)
    trainer = L.Trainer(accelerator="gpu" if dev.type == "cuda" else "cpu", devices=1,
                        precision="bf16-mixed" if dtype == "bf16" else "32-true",
                        max_steps=steps + warmup, limit_val_batches=0,
                        gradient_clip_val=run_cfg["train"]["grad_clip"] or None,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer])
    trainer.fit(module, DataLoader([item] * (steps + warmup), batch_size=None))
    times = timer.times[warmup:]
    memory = peak_memory(dev)  # before the matmul probe below
    med = statistics.median(times)
    peak, peak_source = peak_flops(dev, dtype, peak_tflops)
    achieved = flops / med
    gemm = measured_matmul_flops(dev, dtype)
    opt = trainer.optimizers[0]
    out = {"figure": "train", "model": label or mc["backbone"], "backbone": mc["backbone"],
           "width": mc["dim"], "layers": mc["layers"],
           "parameters": sum(p.numel() for p in module.model.parameters()),
           "length": length, "batch": batch, "steps": steps, "warmup": warmup,
           "device": str(dev), "dtype": dtype, "compile": compile,
           "fused_adamw": bool(opt.defaults.get("fused")),
           "scan_impl": resolve_scan_impl(mc["scan_impl"], dev)
           if BACKBONES[mc["backbone"]].mixers else None,
           "threads": torch.get_num_threads(), "torch": torch.__version__,
           "machine": machine_name(dev),
           "seconds_per_step": round(med, 6), "min_seconds": round(min(times), 6),
           "max_seconds": round(max(times), 6),
           "tokens_per_second": round(batch * length / med, 1),
           "flops_per_step": flops, "achieved_tflops": round(achieved / 1e12, 6),
           "peak_tflops": None if peak is None else round(peak / 1e12, 1),
           "peak_source": peak_source,
           "mfu": None if peak is None else round(achieved / peak, 6),
           "measured_matmul_tflops": round(gemm / 1e12, 4),
           "fraction_of_measured_matmul": round(achieved / gemm, 4)}
    out.update(memory)
    return out


def bench_train_preset(preset: str | None, cfg: dict, **kw) -> dict:
    """:func:`bench_train` of a preset model size (``config/presets``), or of ``cfg``'s."""
    model_cfg = load_preset(preset) if preset else cfg["model"]
    return bench_train(model_cfg, {k: v for k, v in cfg.items() if k != "model"}, label=preset,
                       **kw)
