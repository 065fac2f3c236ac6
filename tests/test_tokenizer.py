"""DNATokenizer: ids, case, IUPAC, RNA, invalid characters, complement map."""

from __future__ import annotations

import numpy as np
import pytest

from dnadiff.tokenizers import INVALID, DNATokenizer, get_tokenizer


def test_ids(tok):
    assert tok.tokens == ["A", "C", "G", "T", "N", "[MASK]", "[PAD]"]
    assert [tok.token_to_id[t] for t in "ACGTN"] == [0, 1, 2, 3, 4]
    assert tok.n_id == 4
    assert tok.mask_id == 5
    assert tok.pad_id == 6
    assert tok.vocab_size == 7
    assert tok.generable_ids == [0, 1, 2, 3]
    assert tok.mask_id not in tok.generable_ids and tok.pad_id not in tok.generable_ids
    assert tok.n_id not in tok.generable_ids
    assert get_tokenizer("dna").tokens == tok.tokens
    with pytest.raises(ValueError, match="unknown tokenizer"):
        get_tokenizer("protein")


def test_encode_values_and_dtype(tok):
    ids = tok.encode("ACGTN")
    assert ids.dtype == np.uint8
    assert ids.tolist() == [0, 1, 2, 3, 4]


def test_lower_case_equals_upper_case(tok):
    s = "ACGTNacgtnRYKMSWBDHVrykmswbdhv"
    assert tok.encode(s.lower()).tolist() == tok.encode(s.upper()).tolist()


@pytest.mark.parametrize("code", list("RYKMSWBDHVN"))
def test_iupac_codes_are_n(tok, code):
    assert tok.encode(code).tolist() == [tok.n_id]
    assert tok.encode(code.lower()).tolist() == [tok.n_id]


def test_u_is_t(tok):
    assert tok.encode("UuACGU").tolist() == [3, 3, 0, 1, 2, 3]


@pytest.mark.parametrize("bad, pos", [("ACGT1", 5), ("AC-GT", 3), ("*", 1), ("ACGT ", 5),
                                      ("AC.G", 3), ("ACXG", 3), ("ACEG", 3), ("ACGé", 4),
                                      ("acgtj", 5)])
def test_invalid_characters_rejected(tok, bad, pos):
    with pytest.raises(ValueError, match=f"at position {pos} is not a nucleotide"):
        tok.encode(bad)


def test_encode_bytes_marks_invalid(tok):
    ids = tok.encode_bytes(b"AC1T\n")
    assert ids.tolist() == [0, 1, INVALID, 3, INVALID]


def test_every_byte_is_classified(tok):
    """Exactly 32 bytes are valid (ACGTU + 11 IUPAC codes, both cases); all others invalid."""
    valid = set("ACGTU" + "RYKMSWBDHVN")
    valid |= {c.lower() for c in valid}
    assert len(valid) == 32
    lut = tok.build_lut()
    for b in range(256):
        if chr(b) in valid:
            assert lut[b] != INVALID, chr(b)
        else:
            assert lut[b] == INVALID, b


def test_complement_involution(tok):
    comp = tok.complement
    assert comp.tolist() == [3, 2, 1, 0, 4, 5, 6]
    assert (comp[comp] == np.arange(tok.vocab_size)).all()
    for a, b in [("A", "T"), ("C", "G"), ("G", "C"), ("T", "A"), ("N", "N")]:
        assert comp[tok.token_to_id[a]] == tok.token_to_id[b]
    assert comp[tok.mask_id] == tok.mask_id
    assert comp[tok.pad_id] == tok.pad_id


def test_reverse_complement(tok):
    ids = tok.encode("AACGTNG")
    rc = tok.reverse_complement(ids)
    assert tok.decode(rc) == "CNACGTT"
    assert (tok.reverse_complement(rc) == ids).all()
    # batched: reverses the last axis of each row
    batch = np.stack([tok.encode("AAAC"), tok.encode("GTTN")])
    out = tok.reverse_complement(batch)
    assert [tok.decode(r) for r in out] == ["GTTT", "NAAC"]
    # specials are fixed points
    assert tok.reverse_complement([tok.mask_id, 0, tok.pad_id]).tolist() == [
        tok.pad_id, 3, tok.mask_id]


def test_decode_encode_roundtrip(tok):
    rng = np.random.default_rng(1)
    s = "".join(rng.choice(list("ACGTN"), size=500))
    assert tok.decode(tok.encode(s)) == s
    assert tok.decode(tok.encode("acgtn")) == "ACGTN"
    assert tok.decode(tok.encode("RYU")) == "NNT"


def test_decode_specials(tok):
    assert tok.decode([0, tok.mask_id, tok.pad_id]) == "A??"


def test_to_dict(tok):
    d = tok.to_dict()
    assert d["name"] == "dna"
    assert d["tokens"] == tok.tokens
    assert d["mask_id"] == 5 and d["pad_id"] == 6
    assert d["generable_ids"] == [0, 1, 2, 3]
    assert d["complement"] == [3, 2, 1, 0, 4, 5, 6]
    # a fresh tokenizer is independent and identical
    assert DNATokenizer().to_dict() == d
