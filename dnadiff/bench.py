"""``dnadiff bench``: measurements printed as JSON, one command per figure.

``bench tokenize``: FASTA -> token ids (MB/s of FASTA, one core), our reader and the whole of
``dnadiff prepare``, next to the naive way (pyfaidx fetch of each window, a per-character
Python encode), with a check that both give the same tokens.
``bench loader``: training windows per second through a DataLoader (tokens/s per worker).
``bench train``: tokens/s and MFU (model FLOPs per second over the device's peak) of whole
training steps (forward, backward, clipping, AdamW, EMA), as ``dnadiff train`` runs them.
``bench sampler``: the cached ancestral sampler against the uncached one with the same seed:
sequences/s, forward passes (measured and expected), and a check that both give identical
sequences.
``bench backbones``: seconds per training step (forward + backward) of each backbone at one
width and depth; on a GPU, the pure-PyTorch scan against the mamba-ssm kernels.
Every figure carries the peak memory of the process (and of the GPU, when one is used).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dnadiff.diffusion.sampling import block_sampler
from dnadiff.errors import DnadiffError


def machine_name(device: torch.device | None = None) -> str:
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory(device: torch.device | None = None) -> dict:
    """The process's peak resident memory so far (MB) and, on a GPU, the peak allocated by
    torch since the last ``torch.cuda.reset_peak_memory_stats``."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    out = {"peak_rss_mb": round(rss / (2**20 if platform.system() == "Darwin" else 2**10), 1)}
    if device is not None and device.type == "cuda":
        out["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


# --------------------------------------------------------------------------- tokenize
def synthetic_fasta(path, megabases: float, seed: int = 0, line_width: int = 60) -> Path:
    """A FASTA of random bases for size-controlled runs: records of up to 1 Mb, soft-masked
    stretches (lower case) and N runs, ``line_width`` bases a line."""
    rng = np.random.default_rng(seed)
    total = max(1, int(megabases * 1e6))
    letters = np.frombuffer(b"ACGTacgtN", dtype=np.uint8)
    path = Path(path)
    with open(path, "wb") as fh:
        done, rec = 0, 0
        while done < total:
            n = min(1_000_000, total - done)
            seq = letters[rng.integers(0, 4, n)]
            for start in rng.integers(0, n, max(1, n // 20_000)):  # soft-masked repeats
                seq[start:start + 300] = np.char.lower(seq[start:start + 300].view("S1")
                                                       ).view(np.uint8)
            seq[: min(n, 1000) if rec % 3 == 0 else 0] = ord("N")  # a telomere-like N run
            body = seq.tobytes()
            fh.write(f">seq{rec} synthetic\n".encode())
            fh.write(b"\n".join(body[i:i + line_width] for i in range(0, n, line_width)))
            fh.write(b"\n")
            done, rec = done + n, rec + 1
    return path


def naive_tokenize(fasta, window: int, limit_bases: int | None = None):
    """The way the HyenaDNA/Caduceus hg38 loaders read a genome: a pyfaidx fetch of each
    window, upper-cased, then one dictionary lookup per character. Yields (record, start,
    int64 ids) of the non-overlapping windows of every record, up to ``limit_bases``."""
    from pyfaidx import Fasta

    vocab = {b: i for i, b in enumerate("ACGTN")}
    fa = Fasta(str(fasta), sequence_always_upper=True, rebuild=False)
    seen = 0
    try:
        for name in fa.keys():
            record = fa[name]
            for start in range(0, len(record), window):
                seq = str(record[start:start + window])
                ids = np.array([vocab.get(ch, 4) for ch in seq], dtype=np.int64)
                yield name, start, ids
                seen += ids.size
                if limit_bases is not None and seen >= limit_bases:
                    return
    finally:
        fa.close()


def _best_of(fn, reps: int) -> float:
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_tokenize(fasta=None, megabases: float = 8.0, reps: int = 3, window: int = 1024,
                   baseline_megabases: float | None = 8.0, seed: int = 0) -> dict:
    """FASTA -> tokens on one core, from an uncompressed file (a gzip input is decompressed to
    a scratch copy first; a missing ``fasta`` is made by :func:`synthetic_fasta`):

    - ``reader``: ``read_sequences`` (parse, validate, encode every record to uint8 ids);
    - ``prepare``: the whole of ``dnadiff prepare`` (plus N runs, base counts, one .npy per
      contig, index.json);
    - ``naive``: :func:`naive_tokenize` over the first ``baseline_megabases`` (it is slow;
      None: the whole genome), its .fai index built beforehand and not timed.
    Rates are in MB of FASTA per second (the file's bytes, line breaks and headers included)
    and in million bases per second; the best of ``reps`` runs (the naive one runs once).
    """
    from dnadiff.data.fasta import open_binary, read_sequences
    from dnadiff.data.prepare import prepare_genome

    torch.set_num_threads(1)
    logging.getLogger("dnadiff.data.prepare").setLevel(logging.WARNING)  # one line per rep
    with tempfile.TemporaryDirectory(prefix="dnadiff-bench-") as tmp:
        tmp = Path(tmp)
        if fasta is None:
            path = synthetic_fasta(tmp / "genome.fa", megabases, seed)
            source = f"synthetic, {megabases:g} Mb (seed {seed})"
        else:
            fasta = Path(fasta)
            path = tmp / "genome.fa"
            with open_binary(fasta) as fin, open(path, "wb") as fout:  # plain copy, not timed
                shutil.copyfileobj(fin, fout, 1 << 22)
            source = str(fasta)
        size = path.stat().st_size
        bases = contigs = 0
        ours = {}  # the ids of the records the naive reader will cover, to compare
        limit = None if baseline_megabases is None else int(baseline_megabases * 1e6)
        for name, _raw, ids in read_sequences(path):  # also warms the page cache
            if limit is None or bases < limit:
                ours[name] = ids
            bases, contigs = bases + ids.size, contigs + 1

        def read_all():
            for _ in read_sequences(path):
                pass

        t_read = _best_of(read_all, reps)

        def prepare():
            out = tmp / "prepared"
            shutil.rmtree(out, ignore_errors=True)
            prepare_genome(path, out)

        t_prep = _best_of(prepare, reps)
        out = {"figure": "tokenize", "source": source, "fasta_mb": round(size / 1e6, 3),
               "bases": int(bases), "contigs": contigs, "reps": reps, "threads": 1,
               "machine": machine_name(),
               "reader_mb_per_s": round(size / t_read / 1e6, 1),
               "reader_mbases_per_s": round(bases / t_read / 1e6, 1),
               "prepare_mb_per_s": round(size / t_prep / 1e6, 1),
               "prepare_mbases_per_s": round(bases / t_prep / 1e6, 1)}
        if baseline_megabases != 0:
            from pyfaidx import Faidx

            Faidx(str(path)).close()  # the .fai index, as those loaders ship it
            t0 = time.perf_counter()
            naive_bases, same = 0, True
            for name, start, ids in naive_tokenize(path, window, limit):
                naive_bases += ids.size
                same = same and np.array_equal(ids, ours[name][start:start + window])
            t_naive = time.perf_counter() - t0
            naive_rate = naive_bases / t_naive / 1e6
            out.update({"naive_window": window, "naive_bases": int(naive_bases),
                        "naive_mbases_per_s": round(naive_rate, 2),
                        "reader_speedup_vs_naive": round(bases / t_read / 1e6 / naive_rate, 1),
                        "identical_tokens": bool(same)})
    out.update(peak_memory())
    return out


# --------------------------------------------------------------------------- loader
def bench_loader(data=None, fasta=None, window: int = 1024, batch: int = 64,
                 batches: int = 50, workers=(0, 1, 2), seed: int = 0,
                 megabases: float = 4.0, consumer_tokens_per_second: float | None = None
                 ) -> dict:
    """Training windows (``RandomWindows`` of the train split, as ``dnadiff train`` reads
    them) through a ``DataLoader`` with each number of ``workers``: tokens/s over ``batches``
    batches after the first (worker start-up excluded), and per worker (0 workers: the main
    process does the work). ``data`` is a prepared directory; else ``fasta`` (or a synthetic
    genome) is prepared into a scratch directory first. ``consumer_tokens_per_second`` (e.g.
    ``bench train``'s figure on the GPU) adds the loader's headroom over it."""
    from torch.utils.data import DataLoader

    from dnadiff.data.prepare import prepare_genome
    from dnadiff.data.windows import PreparedGenome, RandomWindows

    logging.getLogger("dnadiff.data.prepare").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="dnadiff-bench-") as tmp:
        if data is None:
            src = fasta or synthetic_fasta(Path(tmp) / "genome.fa", megabases, seed)
            data = Path(tmp) / "prepared"
            prepare_genome(src, data)
            source = str(fasta) if fasta else f"synthetic, {megabases:g} Mb (seed {seed})"
        else:
            source = str(data)
        genome = PreparedGenome(data)
        ds = RandomWindows(genome, "train", window, (batches + 1) * batch, seed=seed)
        rows = []
        for w in workers:
            dl = DataLoader(ds, batch_size=batch, shuffle=False, num_workers=w, drop_last=True)
            it = iter(dl)
            next(it)  # workers started, first batch out
            t0 = time.perf_counter()
            n = sum(b["tokens"].numel() for b in it)
            dt = time.perf_counter() - t0
            row = {"workers": w, "batches": n // (batch * window),
                   "tokens_per_second": round(n / dt, 1),
                   "tokens_per_second_per_worker": round(n / dt / max(w, 1), 1)}
            if consumer_tokens_per_second:
                row["headroom_over_consumer"] = round(n / dt / consumer_tokens_per_second, 2)
            rows.append(row)
            del it, dl
    out = {"figure": "loader", "source": source, "window": window, "batch": batch,
           "machine": machine_name(), "cpus": os.cpu_count(), "loaders": rows}
    if consumer_tokens_per_second:
        out["consumer_tokens_per_second"] = consumer_tokens_per_second
    out.update(peak_memory())
    return out


# --------------------------------------------------------------------------- train
#: Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, matched against
#: ``torch.cuda.get_device_name``; anything else needs ``--peak-tflops``.
GPU_PEAK_BF16 = (("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989.4e12),
                 ("GH200", 989.4e12), ("H200", 989.4e12), ("A100", 312e12),
                 ("L40S", 362e12), ("L4", 121e12), ("A10G", 70e12), ("A10", 125e12))

#: Model sizes for ``bench train --preset`` (any config's model section works too).
PRESETS = {
    # MDLM's small DiT (OpenWebText): 12 layers x 768, 12 heads, adaLN conditioning of 128
    "dit-small": {"backbone": "dit", "dim": 768, "layers": 12, "heads": 12, "cond_dim": 128},
    # the Caduceus paper's 1k-context model, as config/hg38.yaml (two strands of 118)
    "caduceus-1k": {"backbone": "caduceus", "dim": 236, "layers": 4, "cond_dim": 8},
    # tiny ones for CPU
    "tiny-dit": {"backbone": "dit", "dim": 64, "layers": 2, "heads": 4, "cond_dim": 32},
    "tiny-caduceus": {"backbone": "caduceus", "dim": 64, "layers": 2, "cond_dim": 8,
                      "headdim": 16},
}


def peak_flops(device: torch.device, dtype: str, override_tflops: float | None = None):
    """(peak FLOP/s, where it comes from) for MFU; (None, reason) when unknown."""
    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "CPU peak unknown: give --peak-tflops"
    if dtype != "bf16":
        return None, "peak table is for bf16: give --peak-tflops"
    name = torch.cuda.get_device_name(device)
    for key, value in GPU_PEAK_BF16:
        if key in name:
            return value, f"dense bf16 peak of {key} (data sheet)"
    return None, f"no peak known for {name!r}: give --peak-tflops"


def measured_matmul_flops(device: torch.device, dtype: str) -> float:
    """FLOP/s of a large square matmul in ``dtype`` on ``device`` (best of 3): what this
    machine's GEMM reaches, a practical peak where the data sheet's is unknown (CPUs)."""
    n = 8192 if device.type == "cuda" else 2048
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n, device=device).to(dt)
    b = torch.randn(n, n, device=device).to(dt)
    times = _step_seconds(lambda: torch.mm(a, b), 3, 1, device)
    return 2 * n**3 / min(times)


def dit_training_flops(dim: int, layers: int, length: int, vocab: int, cond_dim: int,
                       mlp_ratio: float = 4, batch: int = 1) -> int:
    """Matmul FLOPs of one DiT training step (forward + backward = 3 x forward): per layer
    qkv, output projection and MLP (2 L D (4D + 2 hidden)), attention scores and values
    (4 L^2 D), and the adaLN modulation (2 cond 6D per sequence); the final adaLN and the
    output head. Equals what ``torch.utils.flop_counter`` counts (tested)."""
    hidden = int(mlp_ratio * dim)
    per_layer = 2 * length * (4 * dim * dim + 2 * dim * hidden) + 4 * length**2 * dim \
        + 2 * cond_dim * 6 * dim
    forward = layers * per_layer + 2 * cond_dim * 2 * dim + 2 * length * dim * vocab
    return 3 * forward * batch


def count_training_flops(objective, model, length: int, device) -> int:
    """FLOPs of one training step (loss forward and backward) on one sequence, counted by
    ``torch.utils.flop_counter`` with attention in its matmul form (matmuls, convolutions and
    attention; elementwise work such as the selective scan's recurrence is not counted, as in
    the usual MFU)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randint(0, 4, (1, length), device=device)
    keep = torch.ones_like(x, dtype=torch.bool)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        objective.loss(model, x, keep).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def bench_train(model_cfg: dict, cfg: dict, length: int, batch: int, steps: int = 10,
                warmup: int = 3, device: str = "cpu", dtype: str = "fp32",
                compile: bool = False, peak_tflops: float | None = None, seed: int = 0,
                label: str | None = None) -> dict:
    """Whole training steps as ``dnadiff train`` runs them: the MDLM loss under bf16 autocast
    (``dtype``), backward, gradient clipping, AdamW (fused on a GPU) and its learning-rate
    schedule, the EMA update; ``compile`` runs the network through torch.compile. Data loading
    and Lightning's own per-step work are not included (``bench loader`` measures the first). Reports the median step time, tokens/s, model FLOPs per step
    (:func:`count_training_flops`, with the pure-PyTorch scan) and MFU."""
    from dnadiff.config import validate_config
    from dnadiff.diffusion import build_objective
    from dnadiff.models import build_backbone
    from dnadiff.models.scan import resolve_scan_impl
    from dnadiff.tokenizers import DNATokenizer
    from dnadiff.training import EMA, make_optimizer

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.set_float32_matmul_precision("high")
    tok = DNATokenizer().to_dict()
    run_cfg = validate_config({**cfg, "model": model_cfg, "compare_ar": False,
                               "objective": "mdlm"}, "bench config")
    mc, tc = run_cfg["model"], run_cfg["train"]
    objective = build_objective(run_cfg, tok)
    torch.manual_seed(seed)
    counting = build_backbone({**mc, "scan_impl": "torch"}, len(tok["tokens"]),
                              complement=tok["complement"]).to(dev)
    flops = count_training_flops(objective, counting, length, dev) * batch
    del counting
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)  # the training steps' own peak
    torch.manual_seed(seed)
    model = build_backbone(mc, len(tok["tokens"]),
                           complement=tok["complement"]).to(dev).train()
    net = torch.compile(model) if compile else model
    opt, sched = make_optimizer(model, {**tc, "steps": steps + warmup})
    ema = EMA(model, tc["ema_decay"]) if tc["ema_decay"] > 0 else None
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 4, (batch, length), generator=gen).to(dev)
    keep = torch.ones_like(x, dtype=torch.bool)
    amp = dtype == "bf16"

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = objective.loss(net, x, keep)
        loss.backward()
        if tc["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"], foreach=True)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(model)

    times = _step_seconds(step, steps, warmup, dev)
    memory = peak_memory(dev)  # before the matmul probe below
    med = statistics.median(times)
    peak, peak_source = peak_flops(dev, dtype, peak_tflops)
    achieved = flops / med
    gemm = measured_matmul_flops(dev, dtype)
    out = {"figure": "train", "model": label or mc["backbone"], "backbone": mc["backbone"],
           "width": mc["dim"], "layers": mc["layers"],
           "parameters": sum(p.numel() for p in model.parameters()),
           "length": length, "batch": batch, "steps": steps, "warmup": warmup,
           "device": device, "dtype": dtype, "compile": compile,
           "fused_adamw": bool(opt.defaults.get("fused")),
           "scan_impl": None if mc["backbone"] == "dit" else
           resolve_scan_impl(mc["scan_impl"], dev),
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
    model = build_backbone(cfg["model"], len(tok["tokens"]),
                           complement=tok.get("complement")).eval()
    return model, objective, tok, "randomly initialized model of the config's size"


def expected_passes(schedule, steps: int, tokens: int, t_min: float = 1e-5
                    ) -> tuple[float, float]:
    """Expected forward passes of ``ancestral_sample`` from ``tokens`` masked positions (all of
    a batch together), (uncached, cached), exact for its step grid: each position is revealed
    independently, at step i with probability q_i (from the schedule's alphas), so with
    F_i = P(revealed by step i), a step i > 0 runs the network when something is still masked,
    1 - F_{i-1}^N, and the cached sampler only when, besides, step i-1 revealed something:
    1 - (1 - q_{i-1})^N - (F_{i-1}^N - F_{i-2}^N). At batch 1 and steps = length = N this is
    about (1 - 1/e) steps: 1.58x fewer passes; the ratio passes 3 at about 2.5 steps per
    position."""
    ts = torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)
    survive, q, F = 1.0, [], []
    for i in range(steps):
        alpha_t, alpha_s = schedule.alpha(ts[i]), schedule.alpha(ts[i + 1])
        p = 1.0 if i == steps - 1 else float((alpha_s - alpha_t) / (1.0 - alpha_t))
        q.append(survive * p)
        survive *= 1.0 - p
        F.append(1.0 - survive)
    n = tokens
    uncached = 1.0 + sum(1.0 - F[i - 1] ** n for i in range(1, steps))
    cached = 1.0 + sum(1.0 - (1.0 - q[i - 1]) ** n
                       - (F[i - 1] ** n - (F[i - 2] ** n if i >= 2 else 0.0))
                       for i in range(1, steps))
    return uncached, cached


def bench_sampler(length: int, steps: int, batches=(1,), seed: int = 0, checkpoint=None,
                  cfg: dict | None = None, device: str = "cpu") -> dict:
    """For each batch size: the uncached and the cached ancestral sampler from the same seed
    (forward passes, seconds, sequences/s, identical output) and the expected passes of
    :func:`expected_passes`; peak memory over the runs."""
    dev = torch.device(device)
    model, objective, tok, source = _model_for_bench(checkpoint, cfg, length)
    model = model.to(dev).eval()
    out = {"figure": "sampler", "length": length, "steps": steps, "seed": seed,
           "model": source, "parameters": sum(p.numel() for p in model.parameters()),
           "time_conditioning": bool(objective.time_conditioning), "device": device,
           "threads": torch.get_num_threads(), "machine": machine_name(dev), "runs": []}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for batch in batches:
        x0 = torch.full((batch, length), tok["mask_id"], dtype=torch.long, device=dev)
        results = {}
        for cache in (False, True):
            gen = torch.Generator().manual_seed(seed)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            fill = block_sampler("ancestral", objective, model, steps=steps, cache=cache)
            x, info = fill(x0, generator=gen)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            results[cache] = (x.cpu(), info["forward_passes"], time.perf_counter() - t0)
        (xu, pu, tu), (xc, pc, tc) = results[False], results[True]
        exp_u, exp_c = expected_passes(objective.schedule, steps, batch * length)
        if objective.time_conditioning:
            exp_c = exp_u  # no cache: the output depends on t
        out["runs"].append({
            "batch": batch, "uncached_forward_passes": pu, "cached_forward_passes": pc,
            "expected_uncached_passes": round(exp_u, 2), "expected_cached_passes": round(exp_c, 2),
            "pass_ratio": round(pu / max(pc, 1), 3),
            "expected_pass_ratio": round(exp_u / exp_c, 3),
            "uncached_seconds": round(tu, 3), "cached_seconds": round(tc, 3),
            "uncached_sequences_per_second": round(batch / max(tu, 1e-9), 3),
            "cached_sequences_per_second": round(batch / max(tc, 1e-9), 3),
            "speedup": round(tu / max(tc, 1e-9), 3),
            "identical_sequences": bool(torch.equal(xu, xc))})
    out.update(peak_memory(dev))
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
            model = build_backbone({**run_cfg["model"], "scan_impl": impl}, len(tok["tokens"]), complement=tok["complement"]).to(dev)

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


# --------------------------------------------------------------------------- all
def bench_all_commands(device: str, tiny: bool, fasta=None) -> list[tuple[str, list[str]]]:
    """(name, ``dnadiff bench`` arguments) of every figure: GPU sizes (dit-small and the
    Caduceus 1k model in bf16 at L=1024, the sampler at steps = L = 1024, batch 1 and 64) on
    ``cuda``; tiny models on ``cpu``; ``tiny`` shrinks everything (a check that each figure
    is produced, as CI runs it)."""
    genome = ["--fasta", str(fasta)] if fasta else []
    if tiny:
        length = 64
        tok = ["tokenize", *genome, "--megabases", "0.5", "--reps", "1",
               "--baseline-megabases", "0.1"]
        loader = ["loader", *genome, "--megabases", "0.5", "--window", "256", "--batch", "8",
                  "--batches", "5", "--workers", "0,1"]
        trains = [("train-tiny-dit", ["--preset", "tiny-dit", "--batch", "2", "--steps", "2",
                                      "--warmup", "1"]),
                  ("train-tiny-caduceus", ["--preset", "tiny-caduceus", "--batch", "2",
                                           "--steps", "2", "--warmup", "1"])]
        cfg = json.dumps({"run": "bench",
                          "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16}})
        samplers = [("sampler", ["sampler", "--config-json", cfg, "--length", str(length),
                                 "--steps", str(length), "--batch", "1,4"])]
    else:
        length = 1024
        tok = ["tokenize", *genome]
        loader = ["loader", *genome]
        if device == "cuda":
            trains = [("train-dit-small", ["--preset", "dit-small", "--batch", "32"]),
                      ("train-dit-small-compiled", ["--preset", "dit-small", "--batch", "32",
                                                    "--compile"]),
                      ("train-caduceus-1k", ["--preset", "caduceus-1k", "--batch", "128"])]
            model = PRESETS["dit-small"]
        else:
            trains = [("train-tiny-dit", ["--preset", "tiny-dit", "--batch", "8"]),
                      ("train-tiny-caduceus", ["--preset", "tiny-caduceus", "--batch", "8"])]
            model = PRESETS["tiny-dit"]
        cfg = json.dumps({"run": "bench",
                          "model": {k: v for k, v in model.items() if k != "backbone"}})
        samplers = [("sampler", ["sampler", "--config-json", cfg, "--length", "1024",
                                 "--steps", "1024", "--batch", "1,64" if device == "cuda"
                                 else "1"])]
        if device != "cuda":  # batch 64 at L = 1024 takes about 20 minutes on 2 CPU cores
            samplers.append(("sampler-batch64", ["sampler", "--config-json", cfg, "--length",
                                                 "256", "--steps", "256", "--batch", "64"]))
    dev = ["--device", device]
    return [("tokenize", tok), ("loader", loader),
            *[(name, ["train", *args, "--length", str(length), *dev]) for name, args in trains],
            *[(name, [*args, *dev]) for name, args in samplers]]


def bench_all(outdir, device: str = "cpu", tiny: bool = False, fasta=None,
              log=None) -> dict:
    """Run every figure in its own process (so each peak memory is its own), write
    ``<outdir>/<name>.json`` and return them all; the loader's headroom is computed over the
    first training figure's tokens/s."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results = {}
    commands = bench_all_commands(device, tiny, fasta)
    trains = [name for name, _ in commands if name.startswith("train")]
    for name, args in [c for c in commands if c[0] != "loader"] + \
            [c for c in commands if c[0] == "loader"]:
        if name == "loader" and trains:
            consumer = results[trains[0]]["tokens_per_second"]
            args = [*args, "--consumer-tokens-per-second", str(consumer)]
        cmd = [sys.executable, "-m", "dnadiff", "bench", *args]
        if log:
            log(f"bench {name}: dnadiff bench {' '.join(args)}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise DnadiffError(f"bench {name} failed (exit {proc.returncode}):\n"
                               f"{proc.stderr.strip()[-2000:]}")
        results[name] = json.loads(proc.stdout)
        results[name]["command"] = "dnadiff bench " + " ".join(args)
        (outdir / f"{name}.json").write_text(json.dumps(results[name], indent=1) + "\n")
    return results
