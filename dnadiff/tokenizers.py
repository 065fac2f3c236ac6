"""Tokenizers: the only place that knows an alphabet.

The diffusion core sees token ids, a mask id, a padding id and the set of ids that may be
generated; everything modality-specific (alphabet, IUPAC handling, complement map, text
vocabularies) lives here.

- ``dna``: single nucleotides (A C G T N) plus [MASK] and [PAD].
- ``char``: the characters of a text corpus plus [EOS] [MASK] [PAD].
- ``bpe``: byte-level BPE trained on a text corpus with the ``tokenizers`` library, plus
  [EOS] [MASK] [PAD]. The specials are appended after the BPE vocabulary and are never produced
  by encoding text, so a corpus that contains the string "[MASK]" cannot forge a mask token.
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
    modality = "dna"
    eos_id = None

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
        self._table = self._lut.tobytes()  # the same map for bytes.translate
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

    def translate(self, seq: bytes) -> bytes:
        """Raw sequence bytes (no newlines) to id bytes, one C pass; invalid -> ``INVALID``."""
        return bytes(seq).translate(self._table)

    def encode_bytes(self, seq: bytes) -> np.ndarray:
        """Encode raw sequence bytes (no newlines) to uint8 ids (read-only, backed by the
        translated bytes); invalid bytes -> ``INVALID``."""
        return np.frombuffer(self.translate(seq), dtype=np.uint8)

    def encode(self, seq: str) -> np.ndarray:
        ids = self.encode_bytes(seq.encode("ascii", errors="replace"))
        bad = np.flatnonzero(ids == INVALID)
        if bad.size:
            raise ValueError(f"character {seq[bad[0]]!r} at position {bad[0] + 1} "
                             "is not a nucleotide")
        return ids.copy()  # writable

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64)
        return self._decode[ids].tobytes().decode("ascii")

    def token_text(self, i: int) -> str:
        """The text of one token, for tables."""
        return self.tokens[i]

    def reverse_complement(self, ids) -> np.ndarray:
        return self.complement[np.asarray(ids, dtype=np.int64)][..., ::-1]

    def to_dict(self) -> dict:
        return {"name": self.name, "modality": self.modality, "tokens": self.tokens,
                "mask_id": self.mask_id, "pad_id": self.pad_id, "eos_id": None,
                "generable_ids": self.generable_ids, "complement": self.complement.tolist()}


# -- the DNA alphabet, for code that reads DNA token arrays (scores, k-mers, classifiers) --------
# Read from a DNATokenizer, so that no other module writes down an id. Base ids are 0..N_BASES-1
# in the order of BASES, so a base id is also its digit in a base-N_BASES k-mer code.
_DNA = DNATokenizer()
#: the bases in id order ("ACGT")
BASES = "".join(_DNA.tokens[i] for i in _DNA.generable_ids)
#: the number of bases (4); an id below it is a base, any other id (N, specials) is not
N_BASES = len(BASES)
#: the ids of the bases, A C G T (0, 1, 2, 3)
BASE_IDS = tuple(_DNA.generable_ids)
#: the ids of C and G, in that order (1, 2)
GC_IDS = (_DNA.token_to_id["C"], _DNA.token_to_id["G"])
#: the id of N (4) and of [PAD] (6)
N_ID = _DNA.n_id
PAD_ID = _DNA.pad_id
#: the complement of each base id, indexed by base id (T G C A: 3, 2, 1, 0)
BASE_COMPLEMENT = _DNA.complement[list(BASE_IDS)]
BASE_COMPLEMENT.flags.writeable = False
if tuple(range(N_BASES)) != BASE_IDS:  # pragma: no cover - guards the k-mer code convention
    raise AssertionError("DNA base ids must be 0..N_BASES-1")


TEXT_SPECIALS = ("[EOS]", "[MASK]", "[PAD]")


class _TextTokenizer:
    """Shared part of the text tokenizers: ``n_base`` ordinary tokens, then [EOS] [MASK] [PAD].

    Every ordinary token and [EOS] is generable (a sample may end a document and start the
    next); [MASK] and [PAD] never are.
    """

    modality = "text"
    n_id = None
    complement = None

    def _init_specials(self, base_tokens: list[str]) -> None:
        self.n_base = len(base_tokens)
        self.tokens = list(base_tokens) + list(TEXT_SPECIALS)
        self.eos_id, self.mask_id, self.pad_id = range(self.n_base, self.n_base + 3)
        self.vocab_size = len(self.tokens)
        self.generable_ids = list(range(self.n_base + 1))
        self.dtype = np.uint8 if self.vocab_size <= 256 else (
            np.uint16 if self.vocab_size <= 65536 else np.int32)

    def decode(self, ids) -> str:
        """Text of ``ids``; specials are written as their names ([EOS], [MASK]; [PAD] as '')."""
        out, run = [], []
        for i in np.asarray(ids, dtype=np.int64).ravel().tolist():
            if i < self.n_base:
                run.append(i)
                continue
            if run:
                out.append(self._decode_base(run))
                run = []
            if i != self.pad_id:
                out.append(self.tokens[i])
        if run:
            out.append(self._decode_base(run))
        return "".join(out)

    def token_text(self, i: int) -> str:
        """The text of one token, for tables."""
        return self.tokens[i] if i >= self.n_base else self._decode_base([i])

    def to_dict(self) -> dict:
        return {"name": self.name, "modality": self.modality, "tokens": self.tokens,
                "mask_id": self.mask_id, "pad_id": self.pad_id, "eos_id": self.eos_id,
                "generable_ids": self.generable_ids}


class CharTokenizer(_TextTokenizer):
    """One token per character of the corpus (the vocabulary is built from the corpus)."""

    name = "char"

    def __init__(self, chars):
        chars = list(chars)
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("a character vocabulary needs distinct single characters")
        self._init_specials(chars)
        self.token_to_id = {c: i for i, c in enumerate(chars)}

    @classmethod
    def train(cls, texts, **_ignored) -> CharTokenizer:
        seen: set[str] = set()
        for t in texts:
            seen.update(t)
        if not seen:
            raise ValueError("no characters to build a vocabulary from")
        return cls(sorted(seen))

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        """Ids of ``text``. A character outside the vocabulary raises ValueError, or is dropped
        with ``unknown="skip"``."""
        get = self.token_to_id.get
        ids = [get(c, -1) for c in text]
        if -1 in ids:
            if unknown != "skip":
                pos = ids.index(-1)
                raise ValueError(f"character {text[pos]!r} at position {pos + 1} is not in "
                                 "this tokenizer's vocabulary")
            ids = [i for i in ids if i >= 0]
        return np.asarray(ids, dtype=self.dtype)

    def _decode_base(self, ids: list[int]) -> str:
        return "".join(self.tokens[i] for i in ids)


class BPETokenizer(_TextTokenizer):
    """Byte-level BPE (GPT-2 style, ``tokenizers`` library): any text encodes, nothing unknown."""

    name = "bpe"

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer
        vocab = hf_tokenizer.get_vocab(with_added_tokens=False)
        base = [None] * len(vocab)
        for piece, i in vocab.items():
            base[i] = piece
        self._init_specials(base)

    @classmethod
    def train(cls, texts, vocab_size: int = 4096, min_frequency: int = 2) -> BPETokenizer:
        """Learn a byte-level BPE vocabulary of ``vocab_size`` tokens (specials included)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        hf = Tokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size - len(TEXT_SPECIALS), min_frequency=min_frequency,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        hf.train_from_iterator(texts, trainer)
        return cls(hf)

    @classmethod
    def from_json(cls, text: str) -> BPETokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(text))

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        return np.asarray(self.hf.encode(text, add_special_tokens=False).ids, dtype=self.dtype)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=self.dtype)
                for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def _decode_base(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=False)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "bpe": self.hf.to_str()}


TEXT_TOKENIZERS = {"char": CharTokenizer, "bpe": BPETokenizer}


def get_tokenizer(name: str = "dna"):
    """The tokenizer of a fixed alphabet by name (``dna``)."""
    if name == "dna":
        return DNATokenizer()
    raise ValueError(f"unknown tokenizer {name!r} (known: dna; text tokenizers char and bpe "
                     "are trained on a corpus by `dnadiff prepare --text`)")


#: the entries of a tokenizer's dict that its object has as attributes of the same name
DESCRIBED = ("modality", "mask_id", "pad_id", "eos_id", "generable_ids", "complement")


def tokenizer_from_dict(d: dict):
    """Rebuild the tokenizer a checkpoint or prepared data set was made with from its dict
    (``to_dict``, the form it is saved in: in memory a tokenizer is always the object). A dict
    whose tokens or ids are not those of the tokenizer it names is refused (ValueError)."""
    if d["name"] == "char":
        tok = CharTokenizer(d["tokens"][: -len(TEXT_SPECIALS)])
    elif d["name"] == "bpe":
        tok = BPETokenizer.from_json(d["bpe"])
    else:
        tok = get_tokenizer(d["name"])
    if tok.tokens != list(d["tokens"]):
        raise ValueError(f"tokenizer {d['name']!r} has changed since this file was written")
    for key in DESCRIBED:
        mine = getattr(tok, key)
        mine = mine.tolist() if isinstance(mine, np.ndarray) else mine
        if key in d and d[key] != mine:
            raise ValueError(f"tokenizer {d['name']!r}: {key} {str(d[key])[:40]} is not its "
                             f"{key} {str(mine)[:40]}")
    return tok


def encode_or_refuse(tokenizer, text: str, where: str) -> np.ndarray:
    """``tokenizer.encode(text)``; a character outside its alphabet is a one-line
    :class:`~dnadiff.errors.DnadiffError` that begins with ``where`` (a config key, a
    sequence)."""
    from dnadiff.errors import DnadiffError

    try:
        return tokenizer.encode(text)
    except ValueError as exc:
        raise DnadiffError(f"{where}: {exc}") from None
