"""The exact parts behind `dnadiff bench`'s figures: the block FASTA reader against a
line-by-line one, N runs and counts, the synthetic genome, FLOP counts, and the expected
forward passes of the sampler."""

import math

import numpy as np
import pytest
import torch
from test_sampling import Recorder, all_masked, make_mdlm

import dnadiff.data.fasta as fasta_mod
from dnadiff.config import validate_config
from dnadiff.data.fasta import read_sequences
from dnadiff.data.prepare import n_runs, prepare_genome
from dnadiff.diffusion import build_objective
from dnadiff.diffusion.samplers.ancestral import ancestral_sample, expected_passes
from dnadiff.errors import InputFileError
from dnadiff.models import build_backbone
from dnadiff.perf.tokens import naive_tokenize, synthetic_fasta
from dnadiff.perf.train_step import count_training_flops
from dnadiff.tokenizers import DNATokenizer

LETTERS = np.frombuffer(b"ACGTNacgtn", dtype=np.uint8)


# -- the block FASTA reader -------------------------------------------------------------------
def line_reader(text: bytes):
    """The reference: line by line, a header is a line starting with '>'."""
    out, name, seq, header = [], None, [], None
    for line_no, line in enumerate(text.split(b"\n"), start=1):
        if line.startswith(b">"):
            if name is not None:
                out.append((name, b"".join(seq), header))
            name, seq, header = line[1:].split()[0].decode(), [], line_no
        elif name is not None:
            seq.append(line.translate(None, b" \t\r\n"))
    out.append((name, b"".join(seq), header))
    return out


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 22])
def test_block_reader_matches_line_reader(tmp_path, monkeypatch, block):
    """Any block size: headers split across blocks, a '>' at a block start that is not at a
    line start, CRLF and blank lines, no final newline give the records, sequences and header
    line numbers of a line-by-line reader."""
    monkeypatch.setattr(fasta_mod, "BLOCK_BYTES", block)
    rng = np.random.default_rng(block)
    for case in range(12):
        lines = [b""] * int(rng.integers(0, 2))
        for r in range(int(rng.integers(1, 5))):
            lines.append(f">rec{r} some description {case}".encode())
            for _ in range(int(rng.integers(1, 6))):
                lines.append(LETTERS[rng.integers(0, 10, int(rng.integers(0, 13)))].tobytes())
                if rng.random() < 0.2:
                    lines.append(b"")
        sep = b"\r\n" if case % 3 == 0 else b"\n"
        text = sep.join(lines) + (sep if case % 2 else b"")
        path = tmp_path / f"c{case}.fa"
        path.write_bytes(text)
        want = list(line_reader(text.replace(b"\r\n", b"\n")))
        got = list(fasta_mod.iter_fasta_raw(path))
        if any(not s for _, s, _ in want):  # a record without sequence: read_sequences refuses
            assert got == want
            continue
        assert got == want
        assert [(n, s) for n, s, _ in got] == [(n, r) for n, r, _ in read_sequences(path)]


def test_block_reader_gt_inside_a_line_is_not_a_header(tmp_path, monkeypatch):
    monkeypatch.setattr(fasta_mod, "BLOCK_BYTES", 4)
    path = tmp_path / "x.fa"
    path.write_bytes(b">a\nACG>T\nAC\n")
    assert [(n, s) for n, s, _ in fasta_mod.iter_fasta_raw(path)] == [("a", b"ACG>TAC")]
    with pytest.raises(InputFileError, match=r"character '>' at position 4"):
        list(read_sequences(path))


def test_block_reader_errors_name_the_line(tmp_path, monkeypatch):
    monkeypatch.setattr(fasta_mod, "BLOCK_BYTES", 5)
    path = tmp_path / "x.fa"
    path.write_bytes(b">a\nACGT\n>b\nAC\n>a\nGG\n")
    with pytest.raises(InputFileError, match=r"duplicate record name 'a' \(line 5\)"):
        list(read_sequences(path))
    path.write_bytes(b">a\nACGT\n>\nAC\n")
    with pytest.raises(InputFileError, match="line 3: record header has no name"):
        list(read_sequences(path))


def test_n_runs_and_counts_exact():
    ids = np.array([4, 4, 0, 1, 4, 2, 4, 4, 4], dtype=np.uint8)
    assert n_runs(ids, 4) == [[0, 2], [4, 5], [6, 9]]
    assert n_runs(np.zeros(5, np.uint8), 4) == []
    from dnadiff.data.prepare import base_counts
    assert base_counts(ids, 7, 4).tolist() == np.bincount(ids, minlength=7).tolist()


def test_synthetic_genome_and_naive_reader_agree_with_ours(tmp_path):
    path = synthetic_fasta(tmp_path / "g.fa", 0.05, seed=1)
    ours = {name: ids for name, _, ids in read_sequences(path)}
    assert sum(v.size for v in ours.values()) == 50_000
    assert any((v == 4).any() for v in ours.values())  # N runs
    text = path.read_bytes()
    assert any(c in text for c in b"acgt")  # soft-masked stretches
    seen = 0
    for name, start, ids in naive_tokenize(path, 1000):
        assert ids.dtype == np.int64
        assert np.array_equal(ids, ours[name][start:start + 1000])
        seen += ids.size
    assert seen == 50_000
    info = prepare_genome(path, tmp_path / "prep")
    assert sum(c["n_count"] for c in info["contigs"]) == sum(
        int((v == 4).sum()) for v in ours.values())


# -- exact figures ------------------------------------------------------------------------------
@pytest.mark.parametrize("dim,layers,cond,length,batch", [(32, 2, 16, 64, 1), (48, 3, 8, 40, 3)])
@pytest.mark.parametrize("block", [None, 8])
def test_dit_flops_formula_equals_counted(dim, layers, cond, length, batch, block):
    tok = DNATokenizer()
    cfg = validate_config({"run": "b", "data": {"window": length},
                           "diffusion": {"block_size": block},
                           "model": {"dim": dim, "heads": 4, "layers": layers,
                                     "cond_dim": cond}}, "t")
    model = build_backbone(cfg["model"], 7, complement=tok.complement)
    counted = count_training_flops(build_objective(cfg, tok), model, length, "cpu") * batch
    assert counted == model.training_flops(length, batch=batch, block_size=block)


def test_expected_passes_closed_forms():
    sched = make_mdlm().schedule
    # one position: every step runs uncached until it is revealed; cached: only the first pass
    u, c = expected_passes(sched, 10, 1)
    assert c == pytest.approx(1.0)
    # with many positions every step reveals something: passes = steps
    u, c = expected_passes(sched, 16, 100_000)
    assert u == pytest.approx(16) and c == pytest.approx(16)
    # steps = length at batch 1: about (1 - 1/e) of the steps run the network when cached
    # (uncached: the last k steps are skipped when everything is out by then, ~ e^-k)
    u, c = expected_passes(sched, 1024, 1024)
    assert u == pytest.approx(1024 - 1 / (math.e - 1), abs=0.02)
    assert u / c == pytest.approx(1 / (1 - math.exp(-1)), rel=0.01)


def test_expected_passes_match_the_sampler():
    """The mean forward passes of the real sampler over 300 seeds agree with the formula within
    4 standard errors, cached and uncached."""
    mdlm = make_mdlm()
    length, steps = 24, 48
    passes = {False: [], True: []}
    for seed in range(300):
        for cache in (False, True):
            _, info = ancestral_sample(mdlm, Recorder(), all_masked(1, length), steps,
                                       generator=torch.Generator().manual_seed(seed),
                                       cache=cache)
            passes[cache].append(info["forward_passes"])
    exp_u, exp_c = expected_passes(mdlm.schedule, steps, length)
    for cache, expected in ((False, exp_u), (True, exp_c)):
        values = np.array(passes[cache], dtype=float)
        se = max(values.std() / math.sqrt(values.size), 1e-9)
        assert abs(values.mean() - expected) < 4 * se + 1e-9, (cache, values.mean(), expected)
