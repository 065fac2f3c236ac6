"""Helpers shared by the scoring tests (``tests/test_api.py``, ``tests/test_score.py``): a genome
dominated by a repeated motif, tiny MDLM, AR and block diffusion models trained on it for a
few seconds (so that they learn the motif), and the ``motif_models`` fixture (registered in
``conftest.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnadiff.checkpoint import save_checkpoint
from dnadiff.config import validate_config
from dnadiff.diffusion import build_objective
from dnadiff.models import build_backbone
from dnadiff.tokenizers import DNATokenizer

from conftest import write_fasta

TOK = DNATokenizer()
MOTIF = "ACGTTGCA"
WINDOW = 32
#: training steps per model: enough for each objective to learn the motif (a few seconds)
STEPS = 150


def motif_dna(n: int, seed: int, mutation: float = 0.03) -> str:
    """``n`` bases of the motif repeated, each base replaced by a random one with probability
    ``mutation``."""
    rng = np.random.default_rng(seed)
    s = np.array(list((MOTIF * (n // len(MOTIF) + 1))[:n]))
    flip = rng.random(n) < mutation
    s[flip] = rng.choice(list("ACGT"), int(flip.sum()))
    return "".join(s)


def other_base(base: str, shift: int = 1) -> str:
    return "ACGT"[("ACGT".index(base) + shift) % 4]


def train_tiny(objective: str, steps: int = STEPS, seed: int = 0, **diffusion):
    """A tiny DiT trained with ``objective`` on random windows of a motif genome."""
    cfg = validate_config({"run": f"motif-{objective}", "objective": objective,
                           "data": {"window": WINDOW}, "diffusion": diffusion,
                           "model": {"dim": 32, "layers": 2, "heads": 2, "cond_dim": 16}})
    obj = build_objective(cfg, TOK)
    torch.manual_seed(seed)
    model = build_backbone(cfg["model"], TOK.vocab_size, causal=obj.causal,
                           complement=TOK.complement)
    genome = TOK.encode(motif_dna(20000, seed)).astype(np.int64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    for _ in range(steps):
        starts = rng.integers(0, len(genome) - WINDOW, 32)
        x = torch.from_numpy(np.stack([genome[a:a + WINDOW] for a in starts]))
        loss = obj.loss(model, x, torch.ones_like(x, dtype=torch.bool), generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), cfg


@pytest.fixture(scope="session")
def motif_models(tmp_path_factory):
    """Checkpoints ``mdlm``, ``ar`` and ``bd`` (block diffusion, blocks of 8) trained on the
    motif, and a reference ``fasta`` of two motif contigs (``c1`` 400 bp, ``c2`` 300 bp)."""
    root = tmp_path_factory.mktemp("motif")
    out = {"root": root}
    for name, objective, diffusion in (("mdlm", "mdlm", {}), ("ar", "ar", {}),
                                       ("bd", "mdlm", {"block_size": 8})):
        model, cfg = train_tiny(objective, **diffusion)
        out[name] = root / f"{name}.pt"
        save_checkpoint(out[name], model, cfg, TOK, step=STEPS)
    out["contigs"] = {"c1": motif_dna(400, 7, 0.0), "c2": motif_dna(300, 8, 0.0)}
    out["fasta"] = write_fasta(root / "ref.fa", list(out["contigs"].items()))
    return out
