"""Tokenizers: the only place that knows an alphabet.

The diffusion core sees token ids, a mask id, a padding id and the set of ids that may be
generated; everything modality-specific (alphabet, IUPAC handling, complement map) lives here.
"""

from __future__ import annotations

import numpy as np

#: IUPAC ambiguity codes (upper case) that are read as ``N``.
IUPAC_AMBIGUOUS = "RYKMSWBDHVN"
INVALID = 255


class DNATokenizer:
    """Single-nucleotide tokenizer: A C G T N plus special tokens.

    ``ids``: A=0 C=1 G=2 T=3 N=4 [MASK]=5 [PAD]=6. Only A/C/G/T are *generable*: a sampler
    never emits N, [MASK] or [PAD].
    """

    bases = "ACGTN"
    specials = ("[MASK]", "[PAD]")
    name = "dna"

    def __init__(self):
        self.tokens = list(self.bases) + list(self.specials)
        self.token_to_id = {t: i for i, t in enumerate(self.tokens)}
        self.n_id = self.token_to_id["N"]
        self.mask_id = self.token_to_id["[MASK]"]
        self.pad_id = self.token_to_id["[PAD]"]
        self.vocab_size = len(self.tokens)
        self.generable_ids = [self.token_to_id[b] for b in "ACGT"]
        # Complement map on ids: A<->T, C<->G; N and specials map to themselves.
        comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
        self.complement = np.array(
            [self.token_to_id.get(comp.get(t, t)) for t in self.tokens], dtype=np.int64
        )
        self._lut = self.build_lut()
        self._decode = np.frombuffer("".join(
            t if len(t) == 1 else "?" for t in self.tokens).encode(), dtype=np.uint8)

    def build_lut(self) -> np.ndarray:
        """Byte -> id lookup table. Lower case (soft-masked) maps like upper case, IUPAC
        ambiguity codes map to N, and every other byte maps to ``INVALID``."""
        lut = np.full(256, INVALID, dtype=np.uint8)
        for base in "ACGT":
            for ch in (base, base.lower()):
                lut[ord(ch)] = self.token_to_id[base]
        for ch in IUPAC_AMBIGUOUS:
            lut[ord(ch)] = self.n_id
            lut[ord(ch.lower())] = self.n_id
        # RNA: U is T.
        lut[ord("U")] = lut[ord("u")] = self.token_to_id["T"]
        return lut

    def encode_bytes(self, seq: bytes) -> np.ndarray:
        """Encode raw sequence bytes (no newlines) to uint8 ids; invalid bytes -> ``INVALID``."""
        return self._lut[np.frombuffer(seq, dtype=np.uint8)]

    def encode(self, seq: str) -> np.ndarray:
        ids = self.encode_bytes(seq.encode("ascii", errors="replace"))
        bad = np.flatnonzero(ids == INVALID)
        if bad.size:
            raise ValueError(f"character {seq[bad[0]]!r} at position {bad[0] + 1} "
                             "is not a nucleotide")
        return ids

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64)
        return self._decode[ids].tobytes().decode("ascii")

    def reverse_complement(self, ids) -> np.ndarray:
        return self.complement[np.asarray(ids, dtype=np.int64)][..., ::-1]

    def to_dict(self) -> dict:
        return {"name": self.name, "tokens": self.tokens, "mask_id": self.mask_id,
                "pad_id": self.pad_id, "generable_ids": self.generable_ids,
                "complement": self.complement.tolist()}


def get_tokenizer(name: str = "dna"):
    if name == "dna":
        return DNATokenizer()
    raise ValueError(f"unknown tokenizer {name!r} (known: dna)")


def tokenizer_from_dict(d: dict):
    """Rebuild the tokenizer a checkpoint or prepared data set was made with."""
    tok = get_tokenizer(d["name"])
    if tok.tokens != list(d["tokens"]):
        raise ValueError(f"tokenizer {d['name']!r} has changed since this file was written")
    return tok
