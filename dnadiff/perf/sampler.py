"""A sampler (the configured one, ancestral by default), cached against uncached from the same
seed: forward passes (measured and, where the sampler knows it, their exact expectation),
seconds, sequences/s, identical output."""

from __future__ import annotations

import time

import torch

from dnadiff import runtime
from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint
from dnadiff.diffusion import build_objective
from dnadiff.diffusion.samplers import block_sampler, sampler_for, sampler_options
from dnadiff.diffusion.samplers.driver import fill_batches
from dnadiff.models import build_backbone
from dnadiff.perf.common import machine_name, peak_memory
from dnadiff.tokenizers import DNATokenizer


def model_for_bench(checkpoint, cfg: dict | None, length: int):
    """A trained model from ``checkpoint``, or a freshly initialized one of ``cfg``'s size
    (forward passes and time per pass do not depend on the weights)."""
    if checkpoint:
        ckpt = load_checkpoint(checkpoint)
        model, objective, tok = model_from_checkpoint(ckpt)
        return model, objective, tok, f"checkpoint {checkpoint}"
    tok = DNATokenizer()
    objective = build_objective(cfg, tok)
    torch.manual_seed(cfg["train"]["seed"])
    model = build_backbone(cfg["model"], tok.vocab_size,
                           complement=tok.complement).eval()
    return model, objective, tok, "randomly initialized model of the config's size"


def bench_sampler(length: int, steps: int, batches=(1,), seed: int = 0, checkpoint=None,
                  cfg: dict | None = None, device: str = "cpu",
                  sample_cfg: dict | None = None) -> dict:
    """For each batch size: the uncached and the cached sampler (``sample_cfg``'s
    ``sampler`` and its options; default: the objective's) from the same seed (forward passes,
    network row evaluations, seconds, sequences/s, identical output) and, where the sampler
    knows them (ancestral), the expected passes (of the batch, and per row for the per-row
    cache); peak memory over the runs."""
    dev = runtime.device(device)
    model, objective, tok, source = model_for_bench(checkpoint, cfg, length)
    model = model.to(dev).eval()
    sample_cfg = sample_cfg or {}
    sampler = sampler_for(sample_cfg.get("sampler"), objective.name)
    options = sampler_options(sampler.name, sample_cfg, objective.name)
    out = {"figure": "sampler", "length": length, "steps": steps, "seed": seed,
           "model": source, "parameters": sum(p.numel() for p in model.parameters()),
           "time_conditioning": bool(objective.time_conditioning),
           "block_size": objective.block_size, "device": device,
           "threads": torch.get_num_threads(), "machine": machine_name(dev), "runs": []}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for batch in batches:
        start = torch.full((length,), tok.mask_id, dtype=torch.long)
        results = {}
        for cache in (False, True):
            gen = torch.Generator().manual_seed(seed)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            fill = block_sampler(sampler.name, objective, model, steps=steps, cache=cache,
                                 **options)
            _, x, info = next(fill_batches(fill, batch, batch, start, gen, dev))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            results[cache] = (x, info["forward_passes"], time.perf_counter() - t0,
                              info["row_evaluations"])
        (xu, pu, tu, ru), (xc, pc, tc, rc) = results[False], results[True]
        run = {"batch": batch, "uncached_forward_passes": pu, "cached_forward_passes": pc}
        # the expected passes are those of one whole-window grid, not of a block model's blocks
        expected = None if objective.block_size else sampler.expected_passes
        if expected is not None:
            exp_u, exp_c = expected(objective.schedule, steps, batch * length)
            # the per-row cache: each row as a batch of one
            row_u, row_c = expected(objective.schedule, steps, length)
            if objective.time_conditioning:
                exp_c, row_c = exp_u, row_u  # no cache: the output depends on t
            run.update({"expected_uncached_passes": round(exp_u, 2),
                        "expected_cached_passes": round(exp_c, 2)})
        run["pass_ratio"] = round(pu / max(pc, 1), 3)
        if expected is not None:
            run["expected_pass_ratio"] = round(exp_u / exp_c, 3)
        run.update({
            "uncached_seconds": round(tu, 3), "cached_seconds": round(tc, 3),
            "uncached_sequences_per_second": round(batch / max(tu, 1e-9), 3),
            "cached_sequences_per_second": round(batch / max(tc, 1e-9), 3),
            "speedup": round(tu / max(tc, 1e-9), 3),
            "uncached_row_evaluations": ru, "cached_row_evaluations": rc})
        if expected is not None:
            run.update({"expected_uncached_row_evaluations": round(batch * row_u, 2),
                        "expected_cached_row_evaluations": round(batch * row_c, 2)})
        run.update({"row_evaluation_ratio": round(ru / max(rc, 1), 3),
                    "identical_sequences": bool(torch.equal(xu, xc))})
        out["runs"].append(run)
    out.update(peak_memory(dev))
    return out
