"""The text branch: tokenizers, corpus reading, splits, packing, and the shared core on text."""

import gzip
import json
import math

import numpy as np
import pytest
import torch

from dnadiff.config import validate_config
from dnadiff.data.prepared import PreparedData
from dnadiff.data.text import assign_splits, fetch_text, prepare_text, read_corpus, split_documents
from dnadiff.data.windows import RandomWindows, TiledWindows
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.tokenizers import BPETokenizer, CharTokenizer, DNATokenizer, tokenizer_from_dict

from conftest import run_cli

CORPUS = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
          "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than "
          "to famish?\n\nAll:\nResolved. resolved.\n\nFirst Citizen:\nFirst, you know Caius "
          "Marcius is chief enemy to the people.\n\nAll:\nWe know't, we know't.\n\n"
          "First Citizen:\nLet us kill him, and we'll have corn at our own price.\n")


def text_cfg(**kw):
    return validate_config({"run": "t", "modality": "text", "text": kw,
                            "data": {"window": 16}})["text"]


# -- tokenizers ------------------------------------------------------------------------------------
def test_char_tokenizer_ids_specials_and_round_trip():
    tok = CharTokenizer.train(["ba", "ca\n"])
    assert tok.tokens == ["\n", "a", "b", "c", "[EOS]", "[MASK]", "[PAD]"]
    assert (tok.eos_id, tok.mask_id, tok.pad_id) == (4, 5, 6)
    assert tok.generable_ids == [0, 1, 2, 3, 4]  # [EOS] is generable, [MASK]/[PAD] are not
    ids = tok.encode("cab\n")
    assert ids.tolist() == [3, 1, 2, 0] and ids.dtype == np.uint8
    assert tok.decode([3, 1, 4, 6, 5]) == "ca[EOS][MASK]"
    with pytest.raises(ValueError, match="'z' at position 2"):
        tok.encode("az")
    assert tok.encode("azb", unknown="skip").tolist() == [1, 2]
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.tokens == tok.tokens and again.encode("cab").tolist() == [3, 1, 2]


def test_bpe_tokenizer_round_trips_any_text_and_cannot_forge_specials():
    tok = BPETokenizer.train([CORPUS] * 3, vocab_size=300, min_frequency=1)
    assert tok.vocab_size <= 300 and tok.tokens[-3:] == ["[EOS]", "[MASK]", "[PAD]"]
    assert tok.mask_id == tok.vocab_size - 2 and tok.generable_ids[-1] == tok.eos_id
    for text in (CORPUS, "unseen: naïve café 東京 🙂\ttab", "[MASK] [EOS]"):
        ids = tok.encode(text)
        assert tok.decode(ids) == text  # byte-level: lossless, nothing unknown
        assert ids.max() < tok.n_base  # the literal string "[MASK]" is not the mask token
    # merges were learned: the corpus takes fewer tokens than bytes
    assert len(tok.encode(CORPUS)) < 0.6 * len(CORPUS.encode())
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.tokens == tok.tokens
    assert again.encode(CORPUS).tolist() == tok.encode(CORPUS).tolist()


def test_tokenizer_from_dict_rejects_a_changed_vocabulary():
    d = CharTokenizer.train(["ab"]).to_dict()
    d["tokens"] = ["b", "a"] + d["tokens"][2:]
    again = tokenizer_from_dict(d)  # a char vocabulary is rebuilt from its own list
    assert again.tokens[:2] == ["b", "a"]
    dna = DNATokenizer().to_dict()
    dna["tokens"] = dna["tokens"][::-1]
    with pytest.raises(ValueError, match="changed"):
        tokenizer_from_dict(dna)


@pytest.mark.parametrize("key,value", [("mask_id", 4), ("generable_ids", [0, 1, 2]),
                                       ("complement", [0, 1, 2, 3, 4, 5, 6]),
                                       ("modality", "text")])
def test_tokenizer_from_dict_refuses_ids_that_are_not_the_tokenizers(key, value):
    """The object is the one form in memory: a dict whose ids say otherwise than the tokenizer
    it names is refused, not silently replaced by the tokenizer's own."""
    d = DNATokenizer().to_dict()
    tok = tokenizer_from_dict(d)
    assert (tok.mask_id, tok.generable_ids, tok.vocab_size) == (5, [0, 1, 2, 3], 7)
    d[key] = value
    with pytest.raises(ValueError, match=f"{key} "):
        tokenizer_from_dict(d)
    del d[key]  # a dict written before the entry existed: the tokenizer's own
    assert tokenizer_from_dict(d).to_dict() == DNATokenizer().to_dict()


# -- corpus reading and splits ---------------------------------------------------------------------
def test_read_corpus_plain_gzip_and_line_ends(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree\n")
    assert read_corpus(tmp_path / "a.txt") == "one\ntwo\nthree\n"
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress("caf\u00e9\n".encode()))
    assert read_corpus(tmp_path / "b.txt.gz") == "caf\u00e9\n"


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\n  \n", "is empty"),
    (b"ok\nline two \xff\xfe bad\n", "line 2: not UTF-8"),
    (b"\x00\x01\x02binary", "looks binary"),
    (b"\x1f\x8b\x08\x00trunc", "corrupt or truncated gzip"),
])
def test_read_corpus_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=message) as err:
        read_corpus(path)
    assert str(path) in str(err.value)


def test_split_documents():
    text = "\n\na\nb\n\n \nc\n\n\n"
    assert split_documents(text, "blank_line") == ["a\nb", "c"]
    assert split_documents(text, "line") == ["a", "b", "c"]
    assert split_documents(text, "none") == ["a\nb\n\n \nc"]


def test_assign_splits_contiguous_blocks_by_characters():
    docs = [f"{i:03d}" + "x" * 6 for i in range(100)]  # 10 characters each with the separator
    sp = assign_splits(docs, 0.1, 0.2)
    assert sp["train"] == docs[:70] and sp["validation"] == docs[70:80]
    assert sp["test"] == docs[80:]
    # one document: cut at line boundaries
    one = ["\n".join(f"line {i}" for i in range(20))]
    sp = assign_splits(one, 0.1, 0.1)
    assert all(len(v) == 1 and v[0] for v in sp.values())
    assert "\n".join(sp[s][0] for s in ("train", "validation", "test")) == one[0]
    with pytest.raises(DnadiffError, match="fewer than 3"):
        assign_splits(["a\nb"], 0.1, 0.1)


def test_two_documents_are_cut_by_lines_keeping_their_boundary():
    first = "\n".join(f"a{i:02d}" for i in range(8))   # 8 lines of 4 characters with '\n'
    second = "\n".join(f"b{i:02d}" for i in range(2))  # 2 lines: 40 characters in all
    sp = assign_splits([first, second], 0.2, 0.2)
    # 60% / 20% / 20% of the characters: 6 lines, then 2, then 2
    assert sp["train"] == ["\n".join(f"a{i:02d}" for i in range(6))]
    assert sp["validation"] == ["a06\na07"] and sp["test"] == ["b00\nb01"]
    sp = assign_splits([first, second], 0.1, 0.1)  # 8 / 1 / 1 lines
    assert sp["train"] == [first] and sp["validation"] == ["b00"] and sp["test"] == ["b01"]
    sp = assign_splits([first + "\n" + second.replace("b", "c"), "z"], 0.25, 0.25)
    assert sp["test"][-1] == "z" and len(sp["test"]) == 2  # the boundary before "z" is kept


# -- prepare ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_prepare_text_packs_documents_with_eos(tmp_path, kind):
    corpus = tmp_path / "c.txt"
    corpus.write_text(CORPUS * 4)
    cfg = text_cfg(tokenizer=kind, vocab_size=300, min_frequency=1, validation_fraction=0.1,
                   test_fraction=0.1)
    index = prepare_text(corpus, tmp_path / "data", cfg)
    tok = tokenizer_from_dict(index["tokenizer"])
    docs = split_documents(CORPUS * 4, "blank_line")
    by_split = assign_splits(docs, 0.1, 0.1)
    data = PreparedData(tmp_path / "data")
    assert data.modality == "text" and data.n_id is None
    for i, split in enumerate(("train", "validation", "test")):
        ids = data.tokens(i)
        assert data.contigs[i]["name"] == split
        assert data.segments(split) == [(i, 0, len(ids))]
        # each document, then [EOS]
        expect = np.concatenate([x for d in by_split[split]
                                 for x in (tok.encode(d), [tok.eos_id])])
        assert ids.tolist() == expect.tolist()
        assert int((ids == tok.eos_id).sum()) == len(by_split[split]) == index["documents"][split]
        assert data.token_counts(split).tolist() == np.bincount(
            ids, minlength=tok.vocab_size).tolist()
        assert index["characters"][split] == sum(len(d) + 1 for d in by_split[split])
    assert not (tmp_path / "data.tmp").exists()


def test_text_windows_score_every_token(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(CORPUS * 4)
    prepare_text(corpus, tmp_path / "data", text_cfg(tokenizer="char"))
    data = PreparedData(tmp_path / "data")
    tiles = TiledWindows(data, "test", 16)
    n_test = data.index["split_sizes"]["test"]
    assert sum(int(tiles[i]["loss_mask"].sum()) for i in range(len(tiles))) == n_test
    rw = RandomWindows(data, "train", 16, 5, seed=1)
    assert rw.n_positions == data.index["split_sizes"]["train"] - 16 + 1


def test_text_config_rejects_dna_only_settings():
    base = {"run": "t", "modality": "text"}
    with pytest.raises(DnadiffError, match="no reverse complement"):
        validate_config({**base, "model": {"backbone": "caduceus"}})
    with pytest.raises(DnadiffError, match="DNA benchmarks"):
        validate_config({**base, "conditional": {"task": "x"},
                         "downstream": {"tasks": [{"name": "x", "type": "gue", "path": "p"}]}})
    with pytest.raises(DnadiffError, match="no reverse complement"):
        validate_config({**base, "sample": {"rc_conjoin": True}})
    with pytest.raises(DnadiffError, match="text.tokenizer"):
        validate_config({**base, "text": {"tokenizer": "wordpiece"}})


def test_fetch_text_copies_a_local_corpus(tmp_path):
    src = tmp_path / "in.txt.gz"
    src.write_bytes(gzip.compress(b"a\r\nb\n"))
    res = fetch_text(str(src), tmp_path / "out.txt", tmp_path / "cache")
    assert (tmp_path / "out.txt").read_text() == "a\nb\n" and res["characters"] == 4


def test_cli_prepare_text_bad_corpus_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xc3\x28 broken\n")
    proc = run_cli("prepare", "--config-json", '{"run": "t", "modality": "text"}',
                   "--text", bad, "--outdir", tmp_path / "data")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("dnadiff: error: ")
    assert str(bad) in proc.stderr and "line 2" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_shared_core_trains_on_text(tmp_path):
    """The same objective and sampler on a char-level corpus: the loss falls below the unigram
    entropy and samples hold generable ids only."""
    from dnadiff.diffusion.samplers.ancestral import ancestral_sample
    from dnadiff.training import train

    corpus = tmp_path / "c.txt"
    corpus.write_text(CORPUS * 20)
    cfg = validate_config({"run": "t", "modality": "text", "text": {"tokenizer": "char"},
                           "data": {"window": 32},
                           "model": {"dim": 32, "layers": 1, "heads": 2, "cond_dim": 32},
                           "train": {"steps": 400, "batch_size": 16, "val_every": 400,
                                     "lr": 3e-3, "warmup_steps": 5, "ema_decay": 0.9}})
    prepare_text(corpus, tmp_path / "data", cfg["text"])
    metrics = train(cfg, tmp_path / "data", tmp_path / "m.pt", tmp_path / "m.csv",
                    tmp_path / "wd", progress=False)
    data = PreparedData(tmp_path / "data")
    gen = data.tokenizer.generable_ids
    c = data.token_counts("validation")[gen].astype(float)
    c = c[c > 0] / c.sum()
    unigram_bits = float(-(c * np.log2(c)).sum())
    assert metrics["val_bits_per_token"] < unigram_bits
    from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint

    model, objective, tok = model_from_checkpoint(load_checkpoint(tmp_path / "m.pt"))
    x0 = torch.full((4, 32), tok.mask_id)
    x, _ = ancestral_sample(objective, model, x0, 8, generator=torch.Generator().manual_seed(0))
    assert set(x.unique().tolist()) <= set(gen)
    assert math.isfinite(metrics["val_bits_per_token"])


def test_keep_best_saves_the_best_validation_weights(tmp_path):
    from dnadiff.checkpoint import load_checkpoint
    from dnadiff.training import train

    corpus = tmp_path / "c.txt"
    corpus.write_text(CORPUS * 10)
    cfg = validate_config({"run": "t", "modality": "text", "text": {"tokenizer": "char"},
                           "data": {"window": 16},
                           "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 16},
                           "objective": "ar",
                           "train": {"steps": 60, "batch_size": 8, "val_every": 20, "lr": 3e-2,
                                     "warmup_steps": 2, "keep": "best", "val_windows": 4}})
    prepare_text(corpus, tmp_path / "data", cfg["text"])
    metrics = train(cfg, tmp_path / "data", tmp_path / "m.pt", tmp_path / "m.csv",
                    tmp_path / "wd", progress=False)
    import csv

    vals = {int(r["step"]) + 1: float(r["val/bits_per_token"])
            for r in csv.DictReader(open(tmp_path / "m.csv")) if r["val/bits_per_token"]}
    best_step = min(vals, key=vals.get)
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt["step"] == best_step == metrics["kept_step"]
    assert metrics["val_bits_per_token"] == pytest.approx(vals[best_step], rel=1e-6)
    assert "ema_state_dict" not in ckpt  # the kept weights are the averaged ones


def test_text_sample_files_with_bad_records_are_rejected(tmp_path):
    from dnadiff.evaluation.text_scores import evaluate_text_samples
    from dnadiff.generation import read_text_samples

    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"id": "a", "tokens": [1, 2]}\n\xff\n')
    with pytest.raises(InputFileError, match="not UTF-8"):
        read_text_samples(path)
    path.write_text('{"id": "a", "tokens": [1, 2]}\n{"id": "b", "tokens": ["x"]}\n')
    with pytest.raises(InputFileError, match="line 2: 'tokens' of sample 'b'"):
        read_text_samples(path)
    path.write_text('{"id": "a", "tokens": [1.5]}\n')
    with pytest.raises(InputFileError, match="integer token ids"):
        read_text_samples(path)
    path.write_text("")
    with pytest.raises(InputFileError, match="has no samples"):
        read_text_samples(path)
    # a [MASK] id in a sample is an error naming the line, not an infinite perplexity
    corpus = tmp_path / "c.txt"
    corpus.write_text(CORPUS * 4)
    cfg = validate_config({"run": "t", "modality": "text", "objective": "ar",
                           "text": {"tokenizer": "char"}, "data": {"window": 16},
                           "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 16}})
    index = prepare_text(corpus, tmp_path / "data", cfg["text"])
    tok = tokenizer_from_dict(index["tokenizer"])
    from dnadiff.checkpoint import save_checkpoint
    from dnadiff.models import build_backbone

    model = build_backbone(cfg["model"], tok.vocab_size, causal=True)
    save_checkpoint(tmp_path / "ar.pt", model, cfg, tok, step=1)
    path.write_text('{"id": "a", "tokens": [1, 2]}\n'
                    f'{{"id": "b", "tokens": [1, {tok.mask_id}]}}\n')
    with pytest.raises(InputFileError, match="line 2: sample 'b' holds token id"):
        evaluate_text_samples(path, tmp_path / "data", tmp_path / "ar.pt", cfg["evaluate"])
