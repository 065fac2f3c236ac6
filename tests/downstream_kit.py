"""Helpers shared by the downstream tests (``tests/test_downstream_*.py``): small configs,
randomized backbones, synthetic motif and repeat tasks, and the ``pretrained`` checkpoint
fixture (registered in ``conftest.py``)."""

import numpy as np
import pytest
import torch

from dnadiff.checkpoint import save_checkpoint
from dnadiff.config import validate_config
from dnadiff.models import build_backbone
from dnadiff.tasks import LabeledSet, LabeledTask
from dnadiff.tokenizers import DNATokenizer

TOK = DNATokenizer()
COMP = TOK.complement.tolist()


def small_cfg(**model):
    return validate_config({"run": "t", "data": {"window": 32},
                            "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 8,
                                      **model}})


def randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def motif_task(n=160, length=24, seed=0):
    """Class 1 carries GGGGGG at a random position; class 0 never has a G run of 4."""
    rng = np.random.default_rng(seed)

    def make(m):
        seqs, labels = [], []
        for i in range(m):
            y = i % 2
            s = rng.choice([0, 1, 3], size=length)  # no G at all
            if y:
                p = rng.integers(0, length - 6)
                s[p:p + 6] = 2
            seqs.append(s.astype(np.uint8))
            labels.append(y)
        return LabeledSet(seqs, np.array(labels), [f"s{i}" for i in range(m)])
    return LabeledTask("motif", ["absent", "present"], make(n), None, make(n // 2), length,
                         "synthetic")


FT = {"steps": 60, "batch_size": 16, "lr": 3e-3, "weight_decay": 0.0, "dropout": 0.0,
      "val_every": 10, "patience": 3, "seeds": [0, 1], "rc_conjoin": False,
      "rc_augment": 0.0}

@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    cfg = small_cfg()
    model = randomize(build_backbone(cfg["model"], TOK.vocab_size), seed=5)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, cfg, TOK, step=1)
    return path

def ds(**downstream):
    return validate_config({"run": "t", "downstream": downstream})["downstream"]

def repeat_task(n=200, seed=0):
    """Class 1 is a tandem repeat of a random 3-5 base unit (10% of bases mutated), class 0 a
    random sequence; lengths 60-240. Linear in the L2-normalised k-mer frequencies (their sum
    is 1 / the L2 norm: large for a diverse spectrum, small for a repeat's few k-mers), close
    to chance in the raw or standardised ones (every column is alike on average)."""
    rng = np.random.default_rng(seed)

    def make(m):
        seqs = []
        for i in range(m):
            length = int(rng.integers(60, 241))
            if i % 2:
                s = np.resize(rng.integers(0, 4, int(rng.integers(3, 6))), length)
                flip = rng.random(length) < 0.1
                s[flip] = rng.integers(0, 4, int(flip.sum()))
            else:
                s = rng.integers(0, 4, length)
            seqs.append(s.astype(np.uint8))
        return LabeledSet(seqs, np.arange(m) % 2, [f"s{i}" for i in range(m)])
    return LabeledTask("repeats", ["complex", "repeat"], make(n), make(n // 2), make(n), 240,
                         "synthetic")


