"""Left-to-right sampling for the AR baseline, with a KV cache on the causal DiT."""

from __future__ import annotations

import torch

from dnadiff.diffusion.samplers.common import categorical_float64, sampling_probs


@torch.no_grad()
def autoregressive_sample(ar, model, x_init: torch.Tensor, generator=None, cond=None,
                          temperature: float = 1.0, top_p: float = 1.0, cache: bool = True
                          ) -> tuple[torch.Tensor, dict]:
    """Fill the ``ar.mask_id`` positions of ``x_init`` one position at a time (given positions
    are kept and used as context).

    With ``cache`` and a backbone that decodes incrementally (``model.decoder()``: the causal
    DiT keeps the keys and values of the positions it has seen), each pass runs the network on
    one new position only: O(L) instead of O(L^2), the same sequences either way; every
    position up to the last one to generate then takes a (one-position) pass."""
    x = x_init.clone()
    n_forward = 0
    todo_cols = (x == ar.mask_id).any(0).nonzero()
    if not todo_cols.numel():
        return x, {"forward_passes": 0, "row_evaluations": 0}
    incremental = cache and getattr(model, "causal", False) and hasattr(model, "decoder")
    decoder = model.decoder(x.shape[0], cond) if incremental else None
    bos = torch.full_like(x[:, :1], ar.bos_id)
    for i in range(int(todo_cols.max()) + 1):
        todo = x[:, i] == ar.mask_id
        if decoder is not None:  # feed the token before position i, get position i's logits
            logp = ar.logp_from_logits(decoder.step(bos if i == 0 else x[:, i - 1:i]))
        elif todo.any():
            logp = ar.log_probs(model, ar.shift_right(x[:, : i + 1]), cond)[:, i]
        else:
            continue
        n_forward += 1
        if todo.any():
            x[todo, i] = categorical_float64(sampling_probs(logp[todo], temperature, top_p),
                                             generator)
    return x, {"forward_passes": n_forward, "row_evaluations": n_forward * x.shape[0]}
