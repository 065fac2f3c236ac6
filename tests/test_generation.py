"""New generation features: temperature / top-p, the forward-pass cache, semi-autoregressive
blocks, the AR sampler, and prefix/suffix/long/AR generation from a checkpoint."""

from __future__ import annotations

import functools

import pytest
import torch

from dnadiff.checkpoint import save_checkpoint
from dnadiff.config import validate_config
from dnadiff.diffusion.autoregressive import Autoregressive
from dnadiff.diffusion.mdlm import MDLM
from dnadiff.diffusion.samplers.ancestral import ancestral_sample
from dnadiff.diffusion.samplers.autoregressive import autoregressive_sample
from dnadiff.diffusion.samplers.common import sampling_probs
from dnadiff.diffusion.samplers.driver import semi_autoregressive
from dnadiff.diffusion.schedule import LogLinearSchedule
from dnadiff.errors import DnadiffError
from dnadiff.generation import sample_to_fasta
from dnadiff.models import build_backbone
from dnadiff.models.dit import DiT
from dnadiff.tokenizers import DNATokenizer

from conftest import read_fasta as conftest_read_fasta

EPS = 1e-3
N_ID, MASK, PAD, V = 4, 5, 6, 7
GEN = [0, 1, 2, 3]


def make_mdlm(time_conditioning=False):
    return MDLM(LogLinearSchedule(EPS), MASK, GEN, V, time_conditioning)


def make_ar():
    return Autoregressive(bos_id=MASK, generable_ids=GEN, vocab_size=V)


def randomized_dit(seed=0, std=0.5, **kw):
    """Tiny DiT with every parameter random (adaLN and head are zero at init), so its output
    depends on the whole (visible) context."""
    torch.manual_seed(seed)
    model = DiT(V, dim=16, layers=1, heads=2, cond_dim=16, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * std)
    return model.eval()


class Recording(torch.nn.Module):
    """Wraps a model and records every input (and sigma)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.inputs, self.sigmas = [], []

    def forward(self, tokens, sigma=None, cond=None):
        self.inputs.append(tokens.clone())
        self.sigmas.append(None if sigma is None else sigma.clone())
        return self.inner(tokens, sigma=sigma, cond=cond)


def all_masked(b, length):
    return torch.full((b, length), MASK, dtype=torch.long)


# -- 8. temperature and nucleus (top-p) -------------------------------------------------------

def test_sampling_probs_zero_ids_stay_zero():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, V, generator=g, dtype=torch.float64) * 3
    logits[:, 4:] = float("-inf")          # mask / N / pad: zero mass (SUBS)
    logits[::3, 1] = float("-inf")         # and some generable ids in some rows
    logp = torch.log_softmax(logits, -1)
    zero = torch.isneginf(logp)
    for temperature in (0.05, 0.5, 1.0, 2.0, 50.0):
        for top_p in (1e-6, 0.3, 0.9, 0.999, 1.0):
            p = sampling_probs(logp, temperature, top_p)
            assert p.dtype == torch.float64 and p.shape == logp.shape
            assert not torch.isnan(p).any()
            assert (p[zero] == 0).all(), (temperature, top_p)
            torch.testing.assert_close(p.sum(-1), torch.ones(50, dtype=torch.float64))
    # float32 input: float64 output
    assert sampling_probs(logp.float()).dtype == torch.float64


@pytest.mark.parametrize("temperature", [0.25, 0.7, 1.0, 1.5, 4.0])
def test_sampling_probs_temperature(temperature):
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0, 0.0, 0.0],
                      [0.7, 0.05, 0.05, 0.2, 0.0, 0.0, 0.0]], dtype=torch.float64)
    logp = torch.log(p)
    got = sampling_probs(logp, temperature=temperature)
    q = p ** (1.0 / temperature)
    torch.testing.assert_close(got, q / q.sum(-1, keepdim=True), rtol=1e-12, atol=1e-15)


def test_sampling_probs_top_p():
    logp = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0], dtype=torch.float64))
    # tiny top_p: only the argmax
    torch.testing.assert_close(sampling_probs(logp, top_p=1e-6),
                               torch.tensor([1.0, 0, 0, 0, 0, 0, 0], dtype=torch.float64))
    # 0.5: the two most probable (0.4 < 0.5 <= 0.7), renormalized
    torch.testing.assert_close(sampling_probs(logp, top_p=0.5),
                               torch.tensor([4 / 7, 3 / 7, 0, 0, 0, 0, 0], dtype=torch.float64),
                               rtol=1e-12, atol=1e-15)
    # 0.75: three tokens
    torch.testing.assert_close(sampling_probs(logp, top_p=0.75),
                               torch.tensor([4 / 9, 3 / 9, 2 / 9, 0, 0, 0, 0],
                                            dtype=torch.float64), rtol=1e-12, atol=1e-15)
    # not sorted in id order: the argmax is kept wherever it is
    lp2 = torch.log(torch.tensor([0.1, 0.2, 0.0, 0.7], dtype=torch.float64))
    torch.testing.assert_close(sampling_probs(lp2, top_p=1e-6),
                               torch.tensor([0.0, 0, 0, 1], dtype=torch.float64))
    # top_p = 1 changes nothing
    torch.testing.assert_close(sampling_probs(logp, top_p=1.0), logp.exp(),
                               rtol=1e-12, atol=1e-15)


def test_sampling_probs_temperature_then_top_p():
    logp = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64))
    # temperature 0.5 -> p^2/Z = [16, 9, 4, 1]/30; top_p 0.6: 16/30 < 0.6 <= 25/30
    torch.testing.assert_close(sampling_probs(logp, temperature=0.5, top_p=0.6),
                               torch.tensor([16 / 25, 9 / 25, 0, 0], dtype=torch.float64),
                               rtol=1e-12, atol=1e-15)


# -- 9. the forward-pass cache ----------------------------------------------------------------

def dedup_consecutive(seq):
    out = []
    for x in seq:
        if not out or not torch.equal(out[-1], x):
            out.append(x)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_cached_equals_uncached_and_uses_fewer_passes(seed):
    m = make_mdlm(time_conditioning=False)
    L, steps = 16, 256
    cached_model = Recording(randomized_dit(seed=3))
    plain_model = Recording(randomized_dit(seed=3))
    xc, ic = ancestral_sample(m, cached_model, all_masked(1, L), steps,
                              generator=torch.Generator().manual_seed(seed), cache=True)
    xu, iu = ancestral_sample(m, plain_model, all_masked(1, L), steps,
                              generator=torch.Generator().manual_seed(seed), cache=False)
    print(f"seed {seed}: cached forward passes {ic['forward_passes']}, "
          f"uncached {iu['forward_passes']} (L={L}, steps={steps})")
    assert torch.equal(xc, xu)
    assert not (xc == MASK).any() and set(xc.unique().tolist()) <= set(GEN)
    assert ic["forward_passes"] == len(cached_model.inputs)
    assert iu["forward_passes"] == len(plain_model.inputs)
    assert ic["forward_passes"] < iu["forward_passes"]
    assert ic["forward_passes"] <= L  # a pass only after a step that revealed something
    # uncached: one pass per step executed; every executed step still had a mask, the loop stops
    # right after the step that revealed the last one
    assert all((x == MASK).any() for x in plain_model.inputs)
    assert iu["forward_passes"] <= steps
    # the cached run evaluated exactly the distinct consecutive states of the uncached run
    dd = dedup_consecutive(plain_model.inputs)
    assert len(dd) == len(cached_model.inputs)
    for a, b in zip(dd, cached_model.inputs):
        assert torch.equal(a, b)
    # the model does depend on its input (otherwise the comparison would be vacuous)
    inner = plain_model.inner
    with torch.no_grad():
        assert not torch.equal(inner(plain_model.inputs[0]), inner(plain_model.inputs[-1]))


def test_uncached_passes_equal_steps_executed():
    """With time conditioning the cache is off; sigma identifies the step of each pass: the
    passes are steps 0, 1, ..., K-1 where step K-1 revealed the last mask."""
    m = make_mdlm(time_conditioning=True)
    L, steps, t_min = 12, 64, 1e-5
    model = Recording(randomized_dit(seed=4, time_conditioning=True))
    x, info = ancestral_sample(m, model, all_masked(1, L), steps,
                               generator=torch.Generator().manual_seed(2), t_min=t_min)
    assert not (x == MASK).any()
    sig = torch.stack([s[0] for s in model.sigmas]).double()
    t = (1 - torch.exp(-sig)) / (1 - EPS)
    idx = torch.round((1 - t) / (1 - t_min) * steps).long().tolist()
    K = info["forward_passes"]
    assert idx == list(range(K))
    assert K > L  # many steps reveal nothing at L=12, steps=64
    # the input of the last pass still had a mask: the loop ran exactly until all were revealed
    assert (model.inputs[-1] == MASK).any()
    # and with cache=True the result is the same (cache is ignored with time conditioning)
    model2 = Recording(randomized_dit(seed=4, time_conditioning=True))
    x2, info2 = ancestral_sample(m, model2, all_masked(1, L), steps,
                                 generator=torch.Generator().manual_seed(2), t_min=t_min,
                                 cache=True)
    assert torch.equal(x2, x) and info2["forward_passes"] == K


def test_cache_identical_with_temperature_and_top_p_batch():
    m = make_mdlm()
    kw = {"temperature": 0.7, "top_p": 0.8}
    a, ia = ancestral_sample(m, randomized_dit(seed=5), all_masked(3, 20), 40,
                             generator=torch.Generator().manual_seed(9), cache=True, **kw)
    b, ib = ancestral_sample(m, randomized_dit(seed=5), all_masked(3, 20), 40,
                             generator=torch.Generator().manual_seed(9), cache=False, **kw)
    assert torch.equal(a, b)
    assert ia["forward_passes"] <= ib["forward_passes"]


# -- 10. semi-autoregressive blocks -----------------------------------------------------------

class BlockRecorder:
    def __init__(self, sampler):
        self.sampler = sampler
        self.calls = []

    def __call__(self, block):
        inp = block.clone()
        out, info = self.sampler(block)
        self.calls.append((inp, out.clone(), info))
        return out, info


def expected_blocks(total, window, stride):
    spans = [(0, min(window, total))]
    pos = spans[0][1]
    while pos < total:
        new = min(stride, total - pos)
        spans.append((pos + new - window, pos + new))
        pos += new
    return spans


def test_semi_autoregressive_blocks():
    m = make_mdlm()
    model = randomized_dit(seed=6)
    total, window, stride = 50, 16, 6
    g = torch.Generator().manual_seed(0)
    x_init = all_masked(2, total)
    prefix = torch.randint(0, 4, (2, 5), generator=g)
    x_init[:, :5] = prefix
    rec = BlockRecorder(functools.partial(ancestral_sample, m, model, steps=8, generator=g))
    x, info = semi_autoregressive(rec, x_init, window, stride)
    assert x.shape == (2, total)
    assert set(x.unique().tolist()) <= set(GEN)
    assert torch.equal(x[:, :5], prefix)
    assert info["forward_passes"] == sum(c[2]["forward_passes"] for c in rec.calls)
    spans = expected_blocks(total, window, stride)
    assert spans == [(0, 16), (6, 22), (12, 28), (18, 34), (24, 40), (30, 46), (34, 50)]
    assert len(rec.calls) == len(spans)
    assert torch.equal(rec.calls[0][0], x_init[:, :window])
    prev_end = window
    for (s, e), (inp, out, _) in zip(spans, rec.calls):
        assert inp.shape == out.shape == (2, window)
        # every block keeps its final content: later blocks never touch it again
        assert torch.equal(x[:, s:e], out)
        assert not (out == MASK).any()
        if s > 0:
            overlap = prev_end - s
            assert overlap == window - (e - prev_end) >= window - stride
            # the overlap is the previous blocks' output, fully generated and kept unchanged
            assert not (inp[:, :overlap] == MASK).any()
            assert torch.equal(out[:, :overlap], inp[:, :overlap])
            assert (inp[:, overlap:] == MASK).all()
        prev_end = e


def test_semi_autoregressive_single_block_and_bad_stride():
    m = make_mdlm()
    model = randomized_dit(seed=7)
    x_init = all_masked(2, 12)
    block = functools.partial(ancestral_sample, m, model, steps=6)
    a, ia = semi_autoregressive(functools.partial(block, generator=torch.Generator()
                                                  .manual_seed(1)), x_init, 16, 4)
    b, ib = block(x_init, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and ia == ib
    for bad in (16, 17, 0):
        with pytest.raises(ValueError, match="stride"):
            semi_autoregressive(block, all_masked(1, 50), 16, bad)


def test_semi_autoregressive_with_ar_blocks_counts_passes():
    ar = make_ar()
    model = randomized_dit(seed=8, causal=True)
    x_init = all_masked(2, 40)
    x_init[:, :3] = torch.tensor([0, 1, 2])
    x_init[:, -2:] = torch.tensor([3, 3])
    block = functools.partial(autoregressive_sample, ar, model,
                              generator=torch.Generator().manual_seed(0))
    x, info = semi_autoregressive(block, x_init, 16, 8)
    assert torch.equal(x[:, :3], x_init[:, :3]) and torch.equal(x[:, -2:], x_init[:, -2:])
    assert set(x.unique().tolist()) <= set(GEN)
    # AR with the KV cache: one (one-position) pass per position of each block up to its last
    # masked column: 16 for the first block, then 16 per block of 8 new, the last block's two
    # given columns not decoded
    assert info["forward_passes"] == 16 + 16 + 16 + 16 - 2
    # without the cache: one (whole-prefix) pass per masked column, each generated once
    block = functools.partial(autoregressive_sample, ar, model, cache=False,
                              generator=torch.Generator().manual_seed(0))
    y, info = semi_autoregressive(block, x_init, 16, 8)
    assert torch.equal(x, y) and info["forward_passes"] == 40 - 3 - 2


# -- 11. the autoregressive sampler -----------------------------------------------------------

def ar_x_init():
    g = torch.Generator().manual_seed(3)
    x = all_masked(3, 20)
    x[:, :4] = torch.randint(0, 4, (3, 4), generator=g)      # prefix
    x[:, 17:] = torch.tensor([3, 0, 2])                       # fixed suffix
    x[:, 12] = torch.randint(0, 4, (3,), generator=g)         # a given column
    x[1, 10] = 1                                              # given in one row only
    return x


def test_autoregressive_sample_fills_masks_only():
    ar = make_ar()
    model = Recording(randomized_dit(seed=9, causal=True))
    x_init = ar_x_init()
    x, info = autoregressive_sample(ar, model, x_init, generator=torch.Generator().manual_seed(4))
    given = x_init != MASK
    assert torch.equal(x[given], x_init[given])
    assert not (x == MASK).any()
    assert set(x.unique().tolist()) <= set(GEN)
    cols = [i for i in range(20) if (x_init[:, i] == MASK).any()]
    assert cols == [4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16]
    assert info["forward_passes"] == len(cols) == len(model.inputs)
    # pass for column i sees BOS + the final tokens before i (left-to-right context)
    for i, inp in zip(cols, model.inputs):
        assert inp.shape == (3, i + 1)
        assert (inp[:, 0] == MASK).all()
        assert torch.equal(inp[:, 1:], x[:, :i])
    # deterministic given the seed
    x2, _ = autoregressive_sample(ar, model.inner, x_init,
                                  generator=torch.Generator().manual_seed(4))
    assert torch.equal(x, x2)
    x3, _ = autoregressive_sample(ar, model.inner, x_init,
                                  generator=torch.Generator().manual_seed(5))
    assert not torch.equal(x, x3)


def test_autoregressive_sample_greedy_is_argmax():
    ar = make_ar()
    model = randomized_dit(seed=10, causal=True)
    x_init = ar_x_init()
    x, _ = autoregressive_sample(ar, model, x_init, generator=torch.Generator().manual_seed(0),
                                 top_p=1e-6)
    with torch.no_grad():
        lp = ar.log_probs(model, ar.shift_right(x))
    todo = x_init == MASK
    assert torch.equal(x[todo], lp.argmax(-1)[todo])


def test_autoregressive_sample_nothing_to_do():
    ar = make_ar()
    x0 = torch.randint(0, 4, (2, 9))
    x, info = autoregressive_sample(ar, randomized_dit(causal=True), x0)
    assert torch.equal(x, x0) and info["forward_passes"] == 0


# -- 12. generation from a checkpoint ---------------------------------------------------------

def make_checkpoint(path, objective="mdlm"):
    cfg = validate_config({"run": "gen", "objective": objective, "data": {"window": 24},
                           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16},
                           "sample": {"num_samples": 3, "batch_size": 2, "steps": 8,
                                      "seed": 1}})
    torch.manual_seed(0)
    model = build_backbone(cfg["model"], V, causal=objective == "ar")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    save_checkpoint(path, model, cfg, DNATokenizer().to_dict(), step=7)
    return cfg


def read_fasta(path):
    """(name, header fields as a dict, field order, sequence) per record."""
    out = []
    for header, seq in conftest_read_fasta(path):
        name, *fields = header.split(" ")
        out.append((name, dict(f.split("=", 1) for f in fields), list(fields), seq))
    return out


@pytest.fixture(scope="module")
def mdlm_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "mdlm.pt"
    return path, make_checkpoint(path)


@pytest.fixture(scope="module")
def ar_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "ar.pt"
    return path, make_checkpoint(path, "ar")


def test_generation_prefix_and_suffix(mdlm_ckpt, tmp_path):
    path, cfg = mdlm_ckpt
    out = tmp_path / "s.fa"
    sc = {**cfg["sample"], "prefix": "ACGTA", "suffix": "TTT"}
    assert sample_to_fasta(path, out, sc, "gen") == 3
    recs = read_fasta(out)
    assert len(recs) == 3
    for i, (name, f, raw, seq) in enumerate(recs):
        assert name == f"gen_{i}"
        assert [r.split("=")[0] for r in raw] == [
            "run", "checkpoint_step", "sampler", "steps", "seed", "index", "length", "cache",
            "temperature", "top_p", "prefix_len", "suffix_len", "forward_passes"]
        assert f["prefix_len"] == "5" and f["suffix_len"] == "3"
        assert f["sampler"] == "ancestral" and f["length"] == "24" and f["steps"] == "8"
        assert f["index"] == str(i) and f["checkpoint_step"] == "7"
        assert 1 <= int(f["forward_passes"]) <= 8
        assert len(seq) == 24 and set(seq) <= set("ACGT")
        assert seq.startswith("ACGTA") and seq.endswith("TTT")
    # lower case flanks are the same flanks
    out2 = tmp_path / "s2.fa"
    sample_to_fasta(path, out2, {**sc, "prefix": "acgta", "suffix": "ttt"}, "gen")
    assert out2.read_text() == out.read_text()


def test_generation_longer_than_window_is_semi_autoregressive(mdlm_ckpt, tmp_path):
    path, cfg = mdlm_ckpt
    out = tmp_path / "long.fa"
    sc = {**cfg["sample"], "length": 60, "prefix": "ACGTA", "suffix": "TTT",
          "temperature": 0.5, "top_p": 0.9}
    sample_to_fasta(path, out, sc, "gen")
    recs = read_fasta(out)
    assert len(recs) == 3
    for name, f, raw, seq in recs:
        assert len(seq) == 60 and set(seq) <= set("ACGT")
        assert seq.startswith("ACGTA") and seq.endswith("TTT")
        assert f["length"] == "60" and f["semi_ar_stride"] == "12"
        assert f["temperature"] == "0.5" and f["top_p"] == "0.9"
        assert raw[-2].startswith("semi_ar_stride=") and raw[-1].startswith("forward_passes=")
        # 4 blocks (0-24, 12-36, 24-48, 36-60), each with masks, at most 8 passes each
        assert 4 <= int(f["forward_passes"]) <= 32
    out2 = tmp_path / "long8.fa"
    sample_to_fasta(path, out2, {**sc, "semi_ar_stride": 8}, "gen")
    assert all(f["semi_ar_stride"] == "8" and len(s) == 60 for _, f, _, s in read_fasta(out2))
    # within the window: no stride field
    out3 = tmp_path / "short.fa"
    sample_to_fasta(path, out3, cfg["sample"], "gen")
    assert all("semi_ar_stride" not in f for _, f, _, _ in read_fasta(out3))


@pytest.mark.parametrize("key,value", [("prefix", "ACNGT"), ("prefix", "ACXGT"),
                                       ("prefix", "AC-GT"), ("suffix", "TTN")])
def test_generation_non_generable_flank_is_an_error(mdlm_ckpt, tmp_path, key, value):
    path, cfg = mdlm_ckpt
    out = tmp_path / "bad.fa"
    with pytest.raises(DnadiffError, match=f"sample.{key}") as ei:
        sample_to_fasta(path, out, {**cfg["sample"], key: value}, "gen")
    assert len(str(ei.value).splitlines()) == 1
    assert not out.exists()


def test_generation_flanks_leaving_nothing_is_an_error(mdlm_ckpt, tmp_path):
    path, cfg = mdlm_ckpt
    with pytest.raises(DnadiffError, match="leave nothing to generate"):
        sample_to_fasta(path, tmp_path / "x.fa",
                        {**cfg["sample"], "prefix": "A" * 20, "suffix": "C" * 4}, "gen")


def test_ar_checkpoint_needs_autoregressive_sampler(ar_ckpt, tmp_path):
    path, cfg = ar_ckpt
    out = tmp_path / "ar.fa"
    assert cfg["sample"]["sampler"] is None  # unset: the objective's own sampler
    with pytest.raises(DnadiffError, match="sample.sampler") as ei:
        sample_to_fasta(path, out, {**cfg["sample"], "sampler": "ancestral"}, "gen")
    assert "'autoregressive'" in str(ei.value) and "\n" not in str(ei.value)
    assert not out.exists()
    assert sample_to_fasta(path, out, cfg["sample"], "gen") == 3
    assert {f["sampler"] for _, f, _, _ in read_fasta(out)} == {"autoregressive"}
    out.unlink()
    # left to right, an AR model cannot condition on a suffix: refused, nothing written
    with pytest.raises(DnadiffError, match="sample.suffix") as ei:
        sample_to_fasta(path, out, {**cfg["sample"], "sampler": "autoregressive",
                                    "prefix": "ACGTA", "suffix": "TTT"}, "gen")
    assert "autoregressive" in str(ei.value) and "3 fixed position(s)" in str(ei.value)
    assert not out.exists()
    sc = {**cfg["sample"], "sampler": "autoregressive", "prefix": "ACGTA"}
    assert sample_to_fasta(path, out, sc, "gen") == 3
    for i, (name, f, raw, seq) in enumerate(read_fasta(out)):
        assert f["sampler"] == "autoregressive"
        assert f["steps"] == "24"  # one position at a time
        assert f["forward_passes"] == "24"  # KV cache: one pass per position
        assert len(seq) == 24 and set(seq) <= set("ACGT")
        assert seq.startswith("ACGTA") and f["suffix_len"] == "0"
    # longer than the window: AR blocks of 24 (stride 12), each decoded position by position
    # up to its last masked column: 24 + 24 + 24 + 24
    out2 = tmp_path / "ar_long.fa"
    sample_to_fasta(path, out2, {**sc, "length": 60}, "gen")
    for name, f, raw, seq in read_fasta(out2):
        assert len(seq) == 60 and seq.startswith("ACGTA")
        assert f["semi_ar_stride"] == "12" and f["forward_passes"] == str(24 * 4)


def test_mdlm_checkpoint_refuses_autoregressive_sampler(mdlm_ckpt, tmp_path):
    path, cfg = mdlm_ckpt
    with pytest.raises(DnadiffError, match="sample.sampler") as ei:
        sample_to_fasta(path, tmp_path / "x.fa", {**cfg["sample"], "sampler": "autoregressive"},
                        "gen")
    assert "'ancestral'" in str(ei.value)


# -- infill template and discrete-T training (added with sample.template) --------------------

def test_template_infills_several_spans(tmp_path):
    from dnadiff.checkpoint import save_checkpoint
    from dnadiff.config import validate_config
    from dnadiff.generation import sample_to_fasta
    from dnadiff.models import build_backbone
    from dnadiff.tokenizers import DNATokenizer

    template = "ACGT----GGCA--TT"  # two spans to infill: positions 4-7 and 12-13
    cfg = validate_config({"run": "tp", "data": {"window": 24},
                           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16},
                           "sample": {"template": template, "num_samples": 3, "steps": 5}})
    tok = DNATokenizer().to_dict()
    torch.manual_seed(0)
    model = build_backbone(cfg["model"], len(tok["tokens"]))
    save_checkpoint(tmp_path / "m.pt", model, cfg, tok, step=1)
    sample_to_fasta(tmp_path / "m.pt", tmp_path / "s.fa", cfg["sample"], "tp")
    lines = (tmp_path / "s.fa").read_text().splitlines()
    headers, seqs = lines[0::2], lines[1::2]
    assert len(seqs) == 3
    for h, seq in zip(headers, seqs):
        assert len(seq) == len(template) and set(seq) <= set("ACGT")
        assert all(c == t for c, t in zip(seq, template) if t != "-")
        assert "template_fixed=10" in h
    # the generated spans are sampled, so they differ between samples
    assert len({s[4:8] + s[12:14] for s in seqs}) > 1


def test_template_excludes_prefix_and_needs_a_gap():
    from dnadiff.config import validate_config
    from dnadiff.errors import DnadiffError

    with pytest.raises(DnadiffError, match="cannot be combined"):
        validate_config({"run": "t", "sample": {"template": "AC--", "prefix": "A"}})
    with pytest.raises(DnadiffError, match="no '-' position"):
        validate_config({"run": "t", "sample": {"template": "ACGT"}})


def test_training_loss_uses_discrete_T_when_configured():
    from dnadiff.config import validate_config
    from dnadiff.diffusion import build_objective
    from dnadiff.tokenizers import DNATokenizer

    tok = DNATokenizer().to_dict()
    cfg = validate_config({"run": "t", "diffusion": {"train_discrete_T": 4}})
    obj = build_objective(cfg, tok)
    seen = []

    def model(x, sigma=None, cond=None):
        seen.append(x)
        return torch.zeros(x.shape + (7,))

    x0 = torch.randint(0, 4, (8, 64))
    torch.manual_seed(0)
    obj.loss(model, x0, torch.ones_like(x0, dtype=torch.bool))
    # with T = 4 the masking rates are 1 - alpha(i/4): the fraction masked per row is near
    # one of 0.25, 0.5, 0.75, ~1.0 (stratified: rows 0-1 -> 1/4, 2-3 -> 2/4, ...)
    frac = (seen[0] == tok["mask_id"]).float().mean(1)
    grid = torch.tensor([0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 0.999, 0.999])
    assert torch.all((frac - grid).abs() < 0.2)
