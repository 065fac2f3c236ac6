"""Backbones: ``logits = model(tokens, sigma=None, cond=None)``; the objective wraps any of them."""

from __future__ import annotations


def build_backbone(model_cfg: dict, vocab_size: int, max_len: int, causal: bool = False,
                   complement=None):
    """The denoiser named by ``model_cfg["backbone"]``; ``causal`` for the AR baseline.

    ``complement`` (the tokenizer's complement map, a list of ids) is needed by ``caduceus`` and
    by ``rc_conjoin`` (post-hoc conjoining at inference, dit and mamba; not for a causal model).
    """
    from dnadiff.models.dit import DiT
    from dnadiff.models.mamba import MambaLM

    backbone = model_cfg["backbone"]
    conjoin = model_cfg["rc_conjoin"] and not causal  # an AR baseline is never conjoined
    needs_complement = backbone == "caduceus" or conjoin
    if needs_complement and complement is None:
        raise ValueError(f"backbone {backbone!r} with these settings needs a tokenizer with a "
                         "complement map (DNA)")
    time_cond = model_cfg["time_conditioning"] and not causal
    if backbone == "dit":
        model = DiT(vocab_size=vocab_size, dim=model_cfg["dim"], layers=model_cfg["layers"],
                    heads=model_cfg["heads"], mlp_ratio=model_cfg["mlp_ratio"],
                    cond_dim=model_cfg["cond_dim"], dropout=model_cfg["dropout"],
                    time_conditioning=time_cond, causal=causal,
                    conv_kernel=model_cfg["conv_kernel"], num_classes=model_cfg["num_classes"])
    elif backbone in ("mamba", "caduceus"):
        model = MambaLM(vocab_size=vocab_size, dim=model_cfg["dim"], layers=model_cfg["layers"],
                        cond_dim=model_cfg["cond_dim"], dropout=model_cfg["dropout"],
                        time_conditioning=time_cond, causal=causal, mixer=model_cfg["mixer"],
                        d_state=model_cfg["d_state"], expand=model_cfg["expand"],
                        d_conv=model_cfg["d_conv"], headdim=model_cfg["headdim"],
                        scan_impl=model_cfg["scan_impl"],
                        complement=complement if backbone == "caduceus" else None,
                        num_classes=model_cfg["num_classes"])
    else:
        raise ValueError(f"unknown backbone {backbone!r}")
    if conjoin:
        model.set_rc_conjoin(complement, vocab_size)
    return model
