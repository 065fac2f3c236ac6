"""Downstream classification, the pieces: exact metrics, k-mer frequencies, padding, and the
pooled features of each backbone (width, time conditioning, strand symmetry)."""


import numpy as np
import pytest
import torch
from downstream_kit import COMP, TOK, randomize, small_cfg

from dnadiff.downstream import classification_metrics, kmer_matrix
from dnadiff.models import build_backbone
from dnadiff.models.classifier import SequenceClassifier, embed, pad_batch


def test_metrics_exact():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    m = classification_metrics(labels, probs)
    assert m["accuracy"] == 0.75
    # TP=2 TN=1 FP=1 FN=0: (2*1 - 1*0) / sqrt(3*2*1*2)
    assert m["mcc"] == pytest.approx(2 / np.sqrt(12))
    assert m["auroc"] == 1.0  # every positive scores above every negative


def test_kmer_matrix_frequencies():
    seqs = [TOK.encode("ACGTA"), TOK.encode("AANAA")]
    x = kmer_matrix(seqs, 2).toarray()
    assert x.shape == (2, 4 + 16)
    assert x[0, :4].tolist() == [0.4, 0.2, 0.2, 0.2]
    # dimers of ACGTA: AC CG GT TA, each 1/4 (codes 4*first+second)
    assert x[0, 4 + 1] == x[0, 4 + 6] == x[0, 4 + 11] == x[0, 4 + 12] == 0.25
    # k-mers touching N are skipped: AANAA has A x4 and AA x2
    assert x[1, 0] == 1.0 and x[1, 4 + 0] == 1.0 and x[1].sum() == 2.0


def test_pad_batch_masks_padding():
    tokens, mask = pad_batch([np.array([0, 1, 2]), np.array([3])])
    assert tokens.tolist() == [[0, 1, 2], [3, TOK.pad_id, TOK.pad_id]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]


@pytest.mark.parametrize("backbone", ["dit", "mamba", "caduceus"])
def test_padding_never_reaches_the_backbone(backbone):
    """A sequence's embedding does not depend on what else is in its batch."""
    cfg = small_cfg(backbone=backbone, headdim=8)
    model = randomize(build_backbone(cfg["model"], TOK.vocab_size, complement=COMP)).eval()
    clf = SequenceClassifier(model, 2).eval()
    short, long = TOK.encode("ACGTACGGTAGG"), TOK.encode("TTGACCA" * 5)
    alone = embed(clf, [short])
    batched = embed(clf, [short, long, short[:5]])
    assert np.allclose(batched[0], alone[0], atol=1e-6)
    assert np.allclose(batched[1], embed(clf, [long])[0], atol=1e-6)
    tokens, mask = pad_batch([short])
    assert np.allclose(alone[0], model.features(tokens).mean(1)[0].detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("backbone", ["dit", "mamba", "caduceus"])
def test_feature_width_is_the_width_of_the_pooled_features(backbone):
    """The backbone says how wide its features are: caduceus (RC-equivariant) stacks both
    strands' halves, so its features are as wide as model.dim like the others'."""
    cfg = small_cfg(backbone=backbone, headdim=8)
    model = build_backbone(cfg["model"], TOK.vocab_size, complement=COMP).eval()
    assert model.rc_equivariant == (backbone == "caduceus")
    half = model.final_norm.normalized_shape[0]
    assert model.feature_width == (2 * half if backbone == "caduceus" else half) == 16
    x = [TOK.encode("ACGTACGGTA"), TOK.encode("TTGACC")]
    assert embed(model, x).shape == (2, model.feature_width)
    assert SequenceClassifier(model, 3).head.in_features == model.feature_width


def test_time_conditioned_backbone_is_embedded_at_sigma_zero():
    cfg = small_cfg(time_conditioning=True)
    model = randomize(build_backbone(cfg["model"], TOK.vocab_size)).eval()
    x = TOK.encode("ACGTACGGTA")
    got = embed(model, [x])
    tokens, _ = pad_batch([x])
    expect = model.features(tokens, torch.zeros(1)).mean(1).detach().numpy()
    assert np.allclose(got, expect, atol=1e-6)


@pytest.mark.parametrize("backbone", ["dit", "mamba"])
def test_conjoined_features_are_strand_symmetric(backbone):
    cfg = small_cfg(backbone=backbone, rc_conjoin=True)
    model = randomize(build_backbone(cfg["model"], TOK.vocab_size, complement=COMP)).eval()
    x = torch.randint(0, 4, (3, 20))
    xrc = torch.as_tensor(TOK.complement)[x].flip(1)
    with torch.no_grad():
        f, frc = model.features(x), model.features(xrc)
    assert torch.allclose(frc, f.flip(1), atol=1e-5)
    model.set_rc_conjoin(None, TOK.vocab_size)  # without conjoining they differ
    with torch.no_grad():
        assert (model.features(xrc) - model.features(x).flip(1)).abs().max() > 1e-2


def test_caduceus_pooled_features_swap_strands_under_rc():
    cfg = small_cfg(backbone="caduceus", headdim=8)
    model = randomize(build_backbone(cfg["model"], TOK.vocab_size, complement=COMP)).eval()
    x = torch.randint(0, 4, (2, 24))
    xrc = torch.as_tensor(TOK.complement)[x].flip(1)
    with torch.no_grad():
        p, prc = model.features(x).mean(1), model.features(xrc).mean(1)
    half = p.shape[1] // 2
    assert torch.allclose(prc, torch.cat([p[:, half:], p[:, :half]], 1), atol=1e-5)
