"""``dnadiff bench``: measurements printed as JSON, one command per figure.

``bench sampler``: the cached ancestral sampler against the uncached one with the same seed:
forward passes, wall time, and a check that both give identical sequences.
``bench backbones``: seconds per training step (forward + backward) of each backbone at one
width and depth; on a GPU, the pure-PyTorch scan against the mamba-ssm kernels.
"""

from __future__ import annotations

import platform
import time

import torch

from dnadiff.diffusion.sampling import ancestral_sample


def _model_for_bench(checkpoint, cfg: dict | None, length: int):
    """A trained model from ``checkpoint``, or a freshly initialized one of ``cfg``'s size
    (forward passes and time per pass do not depend on the weights)."""
    if checkpoint:
        from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(checkpoint)
        model, objective, tok = model_from_checkpoint(ckpt)
        return model, objective, tok, f"checkpoint {checkpoint}"
    from dnadiff.diffusion import build_objective
    from dnadiff.models import build_backbone
    from dnadiff.tokenizers import DNATokenizer

    tok = DNATokenizer().to_dict()
    objective = build_objective(cfg, tok)
    torch.manual_seed(cfg["train"]["seed"])
    model = build_backbone(cfg["model"], len(tok["tokens"]), length,
                           complement=tok.get("complement")).eval()
    return model, objective, tok, "randomly initialized model of the config's size"


def bench_sampler(length: int, steps: int, batch: int, seed: int = 0, checkpoint=None,
                  cfg: dict | None = None) -> dict:
    model, objective, tok, source = _model_for_bench(checkpoint, cfg, length)
    x0 = torch.full((batch, length), tok["mask_id"], dtype=torch.long)
    out = {"length": length, "steps": steps, "batch": batch, "seed": seed, "model": source,
           "parameters": sum(p.numel() for p in model.parameters()),
           "threads": torch.get_num_threads(), "machine": platform.processor() or
           platform.machine()}
    results = {}
    for cache in (False, True):
        gen = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        x, info = ancestral_sample(objective, model, x0, steps, generator=gen, cache=cache)
        results[cache] = (x, info["forward_passes"], time.perf_counter() - t0)
    (xu, pu, tu), (xc, pc, tc) = results[False], results[True]
    out.update({"uncached_forward_passes": pu, "cached_forward_passes": pc,
                "uncached_seconds": round(tu, 2), "cached_seconds": round(tc, 2),
                "pass_ratio": round(pu / max(pc, 1), 3), "speedup": round(tu / max(tc, 1e-9), 3),
                "identical_sequences": bool(torch.equal(xu, xc))})
    return out


def _step_seconds(fn, reps: int, warmup: int, device: torch.device) -> list[float]:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def parse_backbone_specs(text: str) -> list[tuple[str, str | None]]:
    """'dit,mamba,caduceus:mamba2' -> [('dit', None), ('mamba', None), ('caduceus', 'mamba2')]."""
    specs = []
    for part in text.split(","):
        name, _, mixer = part.strip().partition(":")
        if name not in ("dit", "mamba", "caduceus"):
            raise ValueError(f"--backbones: unknown backbone {name!r} (dit, mamba, caduceus)")
        if mixer and (name == "dit" or mixer not in ("mamba1", "mamba2")):
            raise ValueError(f"--backbones: {part!r}: a mixer (mamba1, mamba2) is for mamba and "
                             "caduceus only")
        specs.append((name, mixer or None))
    return specs


def bench_backbones(cfg: dict, specs, length: int, batch: int, reps: int = 5, warmup: int = 1,
                    device: str = "cpu", dtype: str = "fp32", compare_scan: bool = False,
                    seed: int = 0) -> dict:
    """Forward + backward of one MDLM training step (loss and gradients, no optimizer) for each
    backbone at the config's width and depth: seconds per step (median of ``reps``), tokens/s,
    and the ratio to the first backbone. ``compare_scan`` (GPU) also runs mamba/caduceus with
    the pure-PyTorch scan and reports the largest logit difference to the mamba-ssm kernels."""
    from dnadiff.config import validate_config
    from dnadiff.diffusion import build_objective
    from dnadiff.models import build_backbone
    from dnadiff.models.scan import resolve_scan_impl
    from dnadiff.tokenizers import DNATokenizer

    dev = torch.device(device)
    tok = DNATokenizer().to_dict()
    amp = dtype == "bf16"
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, 4, (batch, length), generator=gen).to(dev)
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
        if compare_scan and name != "dit":
            impls = ["torch", "cuda"]
        logits = {}
        for impl in impls:
            torch.manual_seed(seed)
            model = build_backbone({**run_cfg["model"], "scan_impl": impl}, len(tok["tokens"]),
                                   length, complement=tok["complement"]).to(dev)

            def step():
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    loss = objective.loss(model, x0, keep,
                                          generator=torch.Generator(dev).manual_seed(seed))
                loss.backward()
                model.zero_grad(set_to_none=True)

            times = sorted(_step_seconds(step, reps, warmup, dev))
            med = times[len(times) // 2]
            label = name + (f":{run_cfg['model']['mixer']}" if name != "dit" else "")
            row = {"backbone": label,
                   "scan_impl": None if name == "dit" else resolve_scan_impl(impl, dev),
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
