"""``dnadiff bench``: measurements printed as JSON, one command per figure.

``bench sampler``: the cached ancestral sampler against the uncached one with the same seed:
forward passes, wall time, and a check that both give identical sequences.
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
    model = build_backbone(cfg["model"], len(tok["tokens"]), length).eval()
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
