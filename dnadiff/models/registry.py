"""The backbones, one line each: what the rest of dnadiff may know about a backbone.

Torch-free on purpose (the config checks run in Snakemake's own process): the class is named
by its import path and loaded by :func:`dnadiff.models.build_backbone`. The constraint checks
here are the only copy; the constructors call them too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def dit_problem(dim: int, heads: int, conv_kernel: int = 0, layer_conv: int = 0) -> str | None:
    """Why a DiT of this shape cannot be built (config key names), or None."""
    if heads < 1 or dim < 1:
        key, value = ("heads", heads) if heads < 1 else ("dim", dim)
        return f"'model.{key}' ({value}) must be at least 1"
    if dim % heads or (dim // heads) % 2:
        return (f"'model.dim' ({dim}) must be 'model.heads' ({heads}) times an even head width "
                "(rotary embeddings rotate pairs of channels)")
    return conv_width_problem(conv_kernel, layer_conv)


def conv_width_problem(conv_kernel: int, layer_conv: int) -> str | None:
    """Why the DiT's convolution widths are wrong (each odd, or 0 for none), or None; checked
    for every backbone, as the keys are in every model section."""
    for key, width in (("conv_kernel", conv_kernel), ("layer_conv", layer_conv)):
        if width and width % 2 == 0:
            return f"'model.{key}' ({width}) must be odd, or 0 for no convolution"
    return None


def mixer_problem(width: int, mixer: str, expand: int, headdim: int) -> str | None:
    """Why a Mamba mixer of this shape cannot be built, or None."""
    if mixer == "mamba2" and (expand * width) % headdim:
        return (f"'model.headdim' ({headdim}) must divide the mixer width 'model.expand' x "
                f"strand width ({expand * width}) of the mamba2 mixer")
    return None


def caduceus_problem(dim: int, causal: bool) -> str | None:
    """Why a Caduceus of this shape cannot be built, or None."""
    if dim % 2:
        return (f"'model.dim' ({dim}) must be even for caduceus (it is split into two strands: "
                "dim must be even)")
    if causal:
        return ("backbone 'caduceus' cannot be causal (its reverse-complement strand reads "
                "right to left): use 'objective: mdlm' without 'compare_ar', or backbone "
                "'mamba'/'dit' for the AR model")
    return None


@dataclass(frozen=True)
class BackboneSpec:
    """``target``: the class ("module:Class"); ``mixers``: the sequence mixers it offers
    (empty: attention); ``rc_equivariant``: model(RC(x)) == RC(model(x)) by construction (it
    needs a complement map, cannot be causal, and rc_conjoin does not apply)."""

    name: str
    target: str
    mixers: tuple[str, ...]
    rc_equivariant: bool
    problem: Callable[[dict, bool], str | None]


def _dit(m: dict, causal: bool) -> str | None:
    return dit_problem(m["dim"], m["heads"], m["conv_kernel"], m["layer_conv"])


def _mamba(m: dict, causal: bool) -> str | None:
    return mixer_problem(m["dim"], m["mixer"], m["expand"], m["headdim"])


def _caduceus(m: dict, causal: bool) -> str | None:
    return (caduceus_problem(m["dim"], causal)
            or mixer_problem(m["dim"] // 2, m["mixer"], m["expand"], m["headdim"]))


BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in (
    BackboneSpec("dit", "dnadiff.models.dit:DiT", (), False, _dit),
    BackboneSpec("mamba", "dnadiff.models.mamba:MambaLM", ("mamba1", "mamba2"), False, _mamba),
    BackboneSpec("caduceus", "dnadiff.models.mamba:MambaLM", ("mamba1", "mamba2"), True,
                 _caduceus),
)}
