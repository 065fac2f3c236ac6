"""The Python API: a trained model in a notebook.

>>> import dnadiff
>>> model = dnadiff.load("results/yeast-s288c/model.pt")   # or a `dnadiff export` folder
>>> seqs = model.sample(4, length=256, seed=0)
>>> ll = model.log_likelihood(seqs)                 # bits per base and their standard errors
>>> ll.bits_per_token, ll.se
>>> emb = model.embed(seqs)                          # [4, width], mean over positions
>>> model.variant_effects("genome.fa", "variants.vcf")   # log p(alt) - log p(ref), nats

The device is chosen as every verb chooses it (:func:`dnadiff.runtime.device`: the GPU when
one is visible). Every method calls the functions the verbs call (``dnadiff sample``,
``dnadiff score sequences``, ``dnadiff score variants``), and every default is the config
schema's (sections ``sample`` and ``score``): with the same arguments the API and the verbs
give the same numbers. Problems are :class:`dnadiff.errors.DnadiffError` with a one-line
message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from dnadiff.config import validate_config
from dnadiff.data.vcf import SNV, check_ref_bases, read_reference, read_snvs
from dnadiff.errors import DnadiffError
from dnadiff.evaluation.likelihood import load_model
from dnadiff.evaluation.sequence_likelihood import encode_sequences, sequence_likelihood
from dnadiff.evaluation.variants import check_window, model_scorer, require_dna, snv_scores
from dnadiff.generation import generate
from dnadiff.models.classifier import embed, position_features


@dataclass(frozen=True)
class Likelihood:
    """Per-sequence likelihood: ``bits_per_token`` (bits per base for DNA; the NELBO, an upper
    bound, for a masked model; exact for AR), its standard error ``se`` over the ``t_draws``
    diffusion-time draws (0 for AR, NaN for one draw), the ``tokens`` scored (N is not)."""

    bits_per_token: np.ndarray
    se: np.ndarray
    tokens: np.ndarray
    t_draws: int
    estimate: str


class Model:
    """A trained dnadiff model (MDLM, block diffusion or AR) on its device; see :func:`load`."""

    def __init__(self, path):
        self.path = str(path)
        self._ckpt, self.module, self.objective, self.tokenizer, self.device = load_model(path)
        self.config: dict = self._ckpt["config"]
        self.window: int = self.config["data"]["window"]
        self.step: int = self._ckpt["step"]

    def __repr__(self) -> str:
        block = self.objective.block_size
        kind = self.objective.name + (f", blocks of {block}" if block else "")
        return (f"<dnadiff.Model {self.path}: {kind}, {self.config['model']['backbone']}, "
                f"window {self.window}, step {self.step}, on {self.device}>")

    def _score_cfg(self, **given) -> dict:
        """The schema's ``score`` section with the arguments given (checked as config keys)."""
        section = {k: v for k, v in given.items() if v is not None}
        return validate_config({"run": "api", "score": section}, "arguments")["score"]

    def sample(self, n: int = 1, length: int | None = None, *, sampler: str | None = None,
               prefix: str = "", suffix: str = "", template: str = "", steps: int | None = None,
               seed: int = 0, temperature: float | None = None, top_p: float | None = None,
               batch_size: int | None = None, **options) -> list[str]:
        """``n`` generated sequences (decoded text), as ``dnadiff sample`` makes them: the
        config's ``sample`` keys (``options``: any other of them, e.g. ``k`` of the confidence
        sampler); ``None`` leaves a key at the schema's default (``length``: the model's
        window; longer is generated semi-autoregressively)."""
        given = dict(num_samples=n, length=length, sampler=sampler, prefix=prefix,
                     suffix=suffix, template=template, steps=steps, seed=seed,
                     temperature=temperature, top_p=top_p, batch_size=batch_size, **options)
        cfg = validate_config({**self.config, "sample": {k: v for k, v in given.items()
                                                         if v is not None}}, "sample options")
        built = (self.module, self.objective, self.tokenizer)
        return [self.tokenizer.decode(ids) for _, _, ids in generate(
            self.path, cfg["sample"], self.config["run"], self.device, self._ckpt, built)]

    def log_likelihood(self, seqs, *, t_draws: int | None = None, seed: int | None = None,
                       batch_size: int | None = None) -> Likelihood:
        """Per-sequence bits per token of ``seqs`` (strings or token-id arrays), as ``dnadiff
        score sequences`` computes them: the NELBO with ``t_draws`` draws of the diffusion
        time for a masked model (summed over the blocks of a block diffusion model), the exact
        NLL for AR; a sequence longer than the window is scored in consecutive windows.
        Defaults: the schema's ``score`` section."""
        cfg = self._score_cfg(t_draws=t_draws, seed=seed, batch_size=batch_size)
        ids = encode_sequences(self.tokenizer, seqs)
        res = sequence_likelihood(self.module, self.objective, ids, self.window,
                                  cfg["t_draws"], cfg["seed"], cfg["batch_size"], self.device)
        return Likelihood(res["bits_per_token"], res["bits_per_token_se"],
                          res["tokens_scored"], res["t_draws"], res["estimate"])

    def embed(self, seqs, pool: str = "mean", batch_size: int | None = None) -> np.ndarray:
        """The backbone's final-norm features of ``seqs`` (at most the model's window each):
        ``pool="mean"``: the mean over positions, [n, width] (as the downstream probe and
        the Frechet distance take them); ``pool="none"``: every position, [n, length, width]
        (the sequences must then have one length)."""
        ids = encode_sequences(self.tokenizer, seqs)
        longest = max(len(s) for s in ids)
        if longest > self.window:
            raise DnadiffError(f"embed: a sequence of {longest} tokens is longer than the "
                               f"model's window ({self.window}); cut it into windows")
        bs = self._score_cfg(batch_size=batch_size)["batch_size"]
        if pool == "mean":
            return embed(self.module, ids, batch_size=bs, device=self.device)
        if pool != "none":
            raise DnadiffError(f"embed: pool must be 'mean' or 'none', not {pool!r}")
        if len({len(s) for s in ids}) > 1:
            raise DnadiffError("embed: pool='none' stacks the positions of every sequence: "
                               "give sequences of one length (or use pool='mean')")
        return np.stack(position_features(self.module, ids, bs, self.device))

    def variant_effects(self, reference, variants, *, window: int | None = None,
                        both_strands: bool | None = None, batch_size: int | None = None
                        ) -> np.ndarray:
        """log p(alt) - log p(ref) in nats of each single-nucleotide variant, as ``dnadiff
        score variants`` computes it (:mod:`dnadiff.evaluation.variants`: the masked marginal
        for a masked model, later blocks unseen by a block model; the window likelihood
        ratio for AR). ``reference``: a FASTA file, a sequence (its contig is named "seq") or
        a dict of contig -> sequence. ``variants``: a VCF file (multi-allelic records split,
        one score per ALT), or ``(chrom, pos, ref, alt)`` tuples (``(pos, ref, alt)`` with a
        one-sequence reference), pos 1-based as in a VCF. Defaults: the schema's ``score``."""
        require_dna(self.tokenizer, self.path)
        cfg = self._score_cfg(window=window, both_strands=both_strands, batch_size=batch_size)
        check_window(cfg["window"], self.window, self.path)
        ref_name, reference = _reference(reference, self.tokenizer)
        if isinstance(variants, (str, os.PathLike)):
            snvs = read_snvs(variants, reference, ref_name, self.tokenizer)
        else:
            snvs = [SNV(str(c), int(p), str(r).upper(), str(a).upper())
                    for c, p, r, a in (v if len(v) == 4 else ("seq", *v) for v in variants)]
            check_ref_bases(snvs, reference, ref_name, self.tokenizer)
        res = snv_scores(model_scorer(self.module, self.objective, self.tokenizer, self.device),
                         reference, snvs, self.tokenizer, cfg["window"], cfg["both_strands"],
                         cfg["batch_size"])
        return res["score"]


def _reference(reference, tokenizer) -> tuple[str, dict[str, np.ndarray]]:
    """(its name for messages, contig -> token ids) of a FASTA file, a sequence or a dict."""
    if isinstance(reference, os.PathLike) or (isinstance(reference, str)
                                              and os.path.isfile(reference)):
        return str(reference), read_reference(reference, tokenizer)
    if isinstance(reference, str):
        reference = {"seq": reference}
    ids = encode_sequences(tokenizer, list(reference.values()), names=list(reference))
    return "given", dict(zip(reference, ids))  # "the reference given"


def load(path) -> Model:
    """A trained model from a checkpoint (``model.pt``) or a ``dnadiff export`` folder, on the
    GPU when one is visible, else the CPU."""
    return Model(path)
