"""Helpers shared by the Mamba / Caduceus tests (``tests/test_mamba_*.py``): the DNA alphabet's
complement map, every weight randomized (zero-initialized heads would make any model trivially
equivariant), reverse complements of tokens and logits, and random token batches."""

import torch

from dnadiff.tokenizers import DNATokenizer

TOK = DNATokenizer()
COMP = TOK.complement.tolist()
V = len(TOK.tokens)
F64 = torch.float64
def _randomized(model, seed=0):
    """Every parameter random (the adaLN and output heads start at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for m in model.modules():
            if hasattr(m, "A_log"):
                m.A_log.copy_(torch.rand(m.A_log.shape, generator=g) * 2)
    return model.double()


def _rc(tokens):
    return torch.as_tensor(COMP)[tokens].flip(1)


def _rc_logits(logits):
    return logits.flip(1)[..., COMP]


def _tokens(b=3, length=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 4, (b, length), generator=g)
    t[:, 5] = TOK.mask_id
    t[0, 7:12] = TOK.mask_id
    t[-1, 20] = TOK.token_to_id["N"]
    return t
