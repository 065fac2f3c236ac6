"""The discreteness analyses on toy models with known outputs: the masked-position probe's exact
figures (DNA and text), where the masks go, the noise level under any schedule, collapse
curves, and prompt files. On checkpoints, with the marginal trap: ``test_probe_runs.py``."""

import math

import numpy as np
import pytest
import torch

from dnadiff.config import validate_config
from dnadiff.diffusion import build_objective
from dnadiff.errors import InputFileError
from dnadiff.evaluation.discreteness import collapse_curves, collapse_probe, read_prompt_file
from dnadiff.tokenizers import CharTokenizer, DNATokenizer


class FixedLogits(torch.nn.Module):
    """Every position gets the same logits (the model ignores its input)."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, tokens, sigma=None, cond=None):
        return self.logits.expand(tokens.shape[0], tokens.shape[1], -1).clone()


class CopyFirst(torch.nn.Module):
    """Predicts the input's first token at every position (shows where the prompt is)."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens, sigma=None, cond=None):
        return 8.0 * torch.nn.functional.one_hot(tokens[:, :1], self.vocab).float().expand(
            -1, tokens.shape[1], -1)


def mdlm_for(tok, time_conditioning=False):
    cfg = validate_config({"run": "x", "model": {"time_conditioning": time_conditioning}})
    return build_objective(cfg, tok)


def test_dna_probe_figures_are_exact():
    tok = DNATokenizer()
    q = np.array([0.1, 0.2, 0.3, 0.4])
    logits = np.zeros(tok.vocab_size)
    logits[:4] = np.log(q)
    logits[4:] = 3.0  # N/[MASK]/[PAD] are never predicted (SUBS keeps generable ids only)
    counts = np.array([40, 10, 10, 40, 0, 0, 0])  # training composition A=T=0.4, C=G=0.1
    prompts = [("a", tok.encode("ACGTACGT")), ("b", tok.encode("TTTTTTTT"))]
    rows = collapse_probe(FixedLogits(logits), mdlm_for(tok), tok, prompts, 5, counts)
    assert len(rows) == 10
    assert [(r["prompt_id"], r["distance"]) for r in rows[:5]] == [("a", d) for d in range(1, 6)]
    comp = np.array([0.4, 0.1, 0.1, 0.4])
    for r in rows:
        assert r["entropy_bits"] == pytest.approx(-(q * np.log2(q)).sum(), abs=1e-5)
        assert (r["top1"], r["top2"], r["top3"]) == ("T", "G", "C")
        assert (r["p1"], r["p2"], r["p3"]) == pytest.approx((0.4, 0.3, 0.2), abs=1e-6)
        assert r["kl_composition_bits"] == pytest.approx((q * np.log2(q / comp)).sum(),
                                                         abs=1e-5)
        assert r["top10_mass"] == pytest.approx(1.0)  # only 4 generable tokens
        assert "eos_mass" not in r
        assert r["top1_is_most_frequent"] == 0  # A (first of the tied A/T) is the most frequent
    # a prediction equal to the composition has KL 0
    logits[:4] = np.log(comp)
    rows = collapse_probe(FixedLogits(logits), mdlm_for(tok), tok, prompts[:1], 2, counts)
    assert rows[0]["kl_composition_bits"] == pytest.approx(0.0, abs=1e-6)
    assert rows[0]["top1_is_most_frequent"] == 1


def test_text_probe_mass_on_frequent_tokens_and_eos():
    tok = CharTokenizer([chr(ord("a") + i) for i in range(12)])
    logits = np.zeros(tok.vocab_size)
    logits[tok.eos_id] = math.log(3.0)  # [EOS] three times as likely as any letter
    counts = np.arange(tok.vocab_size) * 10  # the most frequent letters are the last ones
    counts[tok.eos_id] = 1000
    rows = collapse_probe(FixedLogits(logits), mdlm_for(tok), tok, [("p", tok.encode("abc"))],
                          4, counts)
    z = 12 + 3.0
    r = rows[0]
    assert r["eos_mass"] == pytest.approx(3.0 / z, abs=1e-6)
    assert r["top1"] == "[EOS]" and r["top1_is_most_frequent"] == 1
    # top-10 frequent tokens: [EOS] and the 9 most frequent letters
    assert r["top10_mass"] == pytest.approx((3.0 + 9) / z, abs=1e-6)
    p = np.array([1.0] * 12 + [3.0]) / z
    assert r["entropy_bits"] == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-5)
    assert "kl_composition_bits" not in r


def test_probe_puts_masks_after_each_prompt_of_any_length():
    tok = CharTokenizer(list("abcdef"))
    prompts = [("x", tok.encode("cab")), ("y", tok.encode("ea")), ("z", tok.encode("fabcd"))]
    rows = collapse_probe(CopyFirst(tok.vocab_size), mdlm_for(tok), tok, prompts, 3,
                          np.ones(tok.vocab_size))
    got = {(r["prompt_id"], r["prompt_tokens"], r["distance"]): r["top1"] for r in rows}
    assert got == {(pid, len(p), d): tok.decode(p[:1]) for pid, p in prompts
                   for d in (1, 2, 3)}


def test_probe_noise_level_is_the_masked_fraction_under_any_schedule():
    from dnadiff.diffusion.schedule import build_schedule
    from dnadiff.evaluation.discreteness import time_for_masked_fraction

    for name in ("loglinear", "cosine"):
        sched = build_schedule({"schedule": name, "eps": 1e-3})
        for frac in (0.1, 0.5, 0.9):
            t = time_for_masked_fraction(sched, frac)
            assert 1 - float(sched.alpha(torch.tensor(t, dtype=torch.float64))) == \
                pytest.approx(frac, abs=1e-9)
    sched = build_schedule({"schedule": "loglinear", "eps": 1e-3})
    assert time_for_masked_fraction(sched, 0.5) == pytest.approx(0.5 / (1 - 1e-3))

    class RecordSigma(torch.nn.Module):
        def forward(self, tokens, sigma=None, cond=None):
            self.sigma = sigma
            return torch.zeros(tokens.shape[0], tokens.shape[1], 7)

    tok = DNATokenizer()
    model = RecordSigma()
    objective = mdlm_for(tok, time_conditioning=True)
    collapse_probe(model, objective, tok, [("p", tok.encode("ACGTACGT"))], 8, np.ones(7))
    # 8 masks after 8 prompt bases: half masked, sigma = -log(alpha) = -log(0.5)
    assert model.sigma.tolist() == pytest.approx([math.log(2.0)], abs=1e-6)


def test_collapse_curves_average_over_prompts():
    rows = [{"prompt_id": i, "distance": d, "entropy_bits": float(i + d), "p1": 0.5,
             "top10_mass": 1.0, "top1_is_most_frequent": i % 2, "top1": "A" if i else "C"}
            for i in range(3) for d in (1, 2)]
    curves = collapse_curves(rows)
    assert [c["distance"] for c in curves] == [1, 2]
    assert curves[0]["entropy_bits_mean"] == pytest.approx(2.0)
    assert curves[1]["entropy_bits_sd"] == pytest.approx(np.std([2.0, 3.0, 4.0]))
    assert curves[0]["top1_is_most_frequent_mean"] == pytest.approx(1 / 3)
    assert (curves[0]["commonest_top1"], curves[0]["commonest_top1_share"]) == ("A", 2 / 3)
    tie = [{"distance": 1, "entropy_bits": 1.0, "top1": t} for t in "GCAT"]
    assert collapse_curves(tie)[0]["commonest_top1"] == "G"  # ties: the first seen


def test_read_prompt_file(tmp_path):
    tok = CharTokenizer(list("abc "))
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "one", "prompt": "abcabc"}\n\n{"prompt": "a x b"}\n'
                    '{"id": 3, "prompt": "zzz"}\n{"prompt": "cc"}\n')
    got = read_prompt_file(path, tok, 10, 4)
    # cut to the last 4 tokens; unknown characters dropped; an empty prompt skipped
    assert [(pid, tok.decode(ids)) for pid, ids in got] == [("one", "cabc"), ("3", "a  b"),
                                                            ("5", "cc")]
    assert len(read_prompt_file(path, tok, 1, 4)) == 1
    path.write_text('{"prompt": "ab"}\n{"text": "ab"}\n')
    with pytest.raises(InputFileError, match="line 2: expected an object with a 'prompt'"):
        read_prompt_file(path, tok, 10, 4)
    path.write_text('{"prompt": "ab"\n')
    with pytest.raises(InputFileError, match="line 1: not JSON"):
        read_prompt_file(path, tok, 10, 4)
    with pytest.raises(InputFileError, match="file not found"):
        read_prompt_file(tmp_path / "none.jsonl", tok, 10, 4)


def test_lima_prompts_encode_with_a_byte_level_bpe(shared_data):
    from dnadiff.tokenizers import BPETokenizer

    text = (shared_data / "text" / "tinyshakespeare.txt").read_text()[:200_000]
    tok = BPETokenizer.train([text], vocab_size=512)
    got = read_prompt_file(shared_data / "prompts" / "lima_prompts.jsonl", tok, 100, 64)
    assert len(got) == 100 and all(0 < len(ids) <= 64 for _, ids in got)
    assert got[0][0].startswith("lima")
