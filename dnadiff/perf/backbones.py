"""Forward + backward of one MDLM training step for each backbone at one width and depth;
on a GPU, the pure-PyTorch scan against the mamba-ssm kernels."""

from __future__ import annotations

import platform

import torch

from dnadiff import runtime
from dnadiff.config import validate_config
from dnadiff.diffusion import build_objective
from dnadiff.models import build_backbone
from dnadiff.models.registry import BACKBONES
from dnadiff.models.scan import resolve_scan_impl
from dnadiff.perf.common import step_seconds
from dnadiff.tokenizers import DNATokenizer


def parse_backbone_specs(text: str) -> list[tuple[str, str | None]]:
    """'dit,mamba,caduceus:mamba2' -> [('dit', None), ('mamba', None), ('caduceus', 'mamba2')]."""
    specs = []
    for part in text.split(","):
        name, _, mixer = part.strip().partition(":")
        if name not in BACKBONES:
            raise ValueError(f"--backbones: unknown backbone {name!r} "
                             f"({', '.join(BACKBONES)})")
        if mixer and mixer not in BACKBONES[name].mixers:
            offered = [n for n, spec in BACKBONES.items() if spec.mixers]
            raise ValueError(f"--backbones: {part!r}: a mixer "
                             f"({', '.join(BACKBONES['mamba'].mixers)}) is for "
                             f"{' and '.join(offered)} only")
        specs.append((name, mixer or None))
    return specs


def bench_backbones(cfg: dict, specs, length: int, batch: int, reps: int = 5, warmup: int = 1,
                    device: str = "cpu", dtype: str = "fp32", compare_scan: bool = False,
                    seed: int = 0) -> dict:
    """Forward + backward of one MDLM training step (loss and gradients, no optimizer) for each
    backbone at the config's width and depth: seconds per step (median of ``reps``), tokens/s,
    and the ratio to the first backbone. ``compare_scan`` (GPU) also runs mamba/caduceus with
    the pure-PyTorch scan and reports the largest logit difference to the mamba-ssm kernels."""
    dev = runtime.device(device)
    tok = DNATokenizer()
    amp = dtype == "bf16"
    gen = torch.Generator().manual_seed(seed)
    ids = torch.tensor(tok.generable_ids)
    x0 = ids[torch.randint(0, len(ids), (batch, length), generator=gen)].to(dev)
    keep = torch.ones_like(x0, dtype=torch.bool)
    out = {"length": length, "batch": batch, "reps": reps, "device": device, "dtype": dtype,
           "threads": torch.get_num_threads(), "torch": torch.__version__,
           "machine": (torch.cuda.get_device_name(dev) if dev.type == "cuda"
                       else platform.processor() or platform.machine()),
           "width": cfg["model"]["dim"], "layers": cfg["model"]["layers"], "backbones": []}
    for name, mixer in specs:
        model_cfg = {**cfg["model"], "backbone": name}
        if mixer:
            model_cfg["mixer"] = mixer
        run_cfg = validate_config({**cfg, "model": model_cfg, "compare_ar": False,
                                   "objective": "mdlm"}, "bench config")
        objective = build_objective(run_cfg, tok)
        impls = [run_cfg["model"]["scan_impl"]]
        if compare_scan and BACKBONES[name].mixers:
            impls = ["torch", "cuda"]
        logits = {}
        for impl in impls:
            torch.manual_seed(seed)
            model = build_backbone({**run_cfg["model"], "scan_impl": impl}, tok.vocab_size,
                                   complement=tok.complement).to(dev)

            def step(objective=objective, model=model):
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    loss = objective.loss(model, x0, keep,
                                          generator=torch.Generator(dev).manual_seed(seed))
                loss.backward()
                model.zero_grad(set_to_none=True)

            times = sorted(step_seconds(step, reps, warmup, dev))
            med = times[len(times) // 2]
            scanned = bool(BACKBONES[name].mixers)
            label = name + (f":{run_cfg['model']['mixer']}" if scanned else "")
            row = {"backbone": label,
                   "scan_impl": resolve_scan_impl(impl, dev) if scanned else None,
                   "parameters": sum(p.numel() for p in model.parameters()),
                   "seconds_per_step": round(med, 6), "min_seconds": round(times[0], 6),
                   "max_seconds": round(times[-1], 6),
                   "tokens_per_second": round(batch * length / med, 1)}
            if len(impls) > 1:
                # a fresh model's output head is zero: perturb every weight the same way for
                # both implementations so that the comparison means something
                g = torch.Generator().manual_seed(seed + 1)
                with torch.no_grad():
                    for p in model.parameters():
                        p.add_(0.05 * torch.randn(p.shape, generator=g).to(p.device, p.dtype))
                sigma = (torch.ones(batch, device=dev)
                         if run_cfg["model"]["time_conditioning"] else None)
                with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16,
                                                     enabled=amp):
                    logits[impl] = model.eval()(x0, sigma=sigma).float()
            out["backbones"].append(row)
        if len(logits) == 2:
            out["backbones"][-1]["max_abs_logit_diff_torch_vs_cuda"] = float(
                (logits["torch"] - logits["cuda"]).abs().max())
    first = out["backbones"][0]["seconds_per_step"]
    for row in out["backbones"]:
        row["ratio_to_first"] = round(row["seconds_per_step"] / first, 3)
    return out
