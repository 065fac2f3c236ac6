"""``dnadiff sample``: generate sequences from a checkpoint and write them as FASTA.

Each header carries the run, checkpoint step, sampler, steps, seed and index, e.g.
``>yeast-s288c_0 run=yeast-s288c checkpoint_step=1500 sampler=ancestral steps=128 seed=0
index=0 length=1024``. Sequences hold generable tokens only (A/C/G/T for DNA).
"""

from __future__ import annotations

import logging
import sys
import time

import torch

from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint
from dnadiff.diffusion.sampling import ancestral_sample
from dnadiff.io import atomic_open

log = logging.getLogger(__name__)


def decode(ids, tokens: list[str]) -> str:
    return "".join(tokens[i] for i in ids.tolist())


def generate(checkpoint, sample_cfg: dict, run: str, device: str = "cpu"):
    """Yield (header, sequence) pairs; deterministic given the checkpoint and sample_cfg."""
    ckpt = load_checkpoint(checkpoint)
    model, mdlm, tok = model_from_checkpoint(ckpt)
    model.to(device)
    length = sample_cfg["length"] or ckpt["config"]["data"]["window"]
    n, bs, steps, seed = (sample_cfg["num_samples"], sample_cfg["batch_size"],
                          sample_cfg["steps"], sample_cfg["seed"])
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for start in range(0, n, bs):
        b = min(bs, n - start)
        x0 = torch.full((b, length), tok["mask_id"], dtype=torch.long, device=device)
        x, info = ancestral_sample(mdlm, model, x0, steps, generator=gen)
        for j in range(b):
            idx = start + j
            header = (f"{run}_{idx} run={run} checkpoint_step={ckpt['step']} "
                      f"sampler={sample_cfg['sampler']} steps={steps} seed={seed} index={idx} "
                      f"length={length}")
            yield header, decode(x[j].cpu(), tok["tokens"])
        done = start + b
        print(f"sampled {done}/{n} sequences ({info['forward_passes']} forward passes per "
              f"batch, {time.time() - t0:.0f} s)", file=sys.stderr, flush=True)


def sample_to_fasta(checkpoint, out, sample_cfg: dict, run: str, line_width: int = 80) -> int:
    n = 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with atomic_open(out, "w") as fh:
        for header, seq in generate(checkpoint, sample_cfg, run, device):
            fh.write(f">{header}\n")
            for i in range(0, len(seq), line_width):
                fh.write(seq[i:i + line_width] + "\n")
            n += 1
    return n
