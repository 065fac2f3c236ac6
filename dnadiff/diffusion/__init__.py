"""The diffusion core: noise schedules, the MDLM objective and samplers.

Modality-agnostic: it sees token ids, a mask id and the ids that may be generated, never an
alphabet.
"""

from dnadiff.diffusion.autoregressive import Autoregressive
from dnadiff.diffusion.mdlm import MDLM
from dnadiff.diffusion.schedule import build_schedule


def block_size(cfg: dict) -> int | None:
    """The block size of block diffusion, ``None`` for plain MDLM (``diffusion.block_size``
    null, or a block as long as the window or longer: one block is MDLM). The AR objective
    ignores it (it is block size 1 already)."""
    size = cfg["diffusion"].get("block_size")
    return None if size is None or size >= cfg["data"]["window"] else int(size)


def build_objective(cfg: dict, tokenizer):
    """The training objective named by ``cfg["objective"]`` (``mdlm`` or ``ar``).

    Both see only token ids: the tokenizer's mask id, generable ids and vocabulary size.
    """
    vocab = tokenizer.vocab_size
    if cfg["objective"] == "mdlm":
        return MDLM(build_schedule(cfg["diffusion"]), tokenizer.mask_id,
                    tokenizer.generable_ids, vocab,
                    time_conditioning=cfg["model"]["time_conditioning"],
                    train_discrete_T=cfg["diffusion"]["train_discrete_T"],
                    train_time_power=cfg["diffusion"]["train_time_power"],
                    train_mask_range=cfg["diffusion"]["train_mask_range"],
                    train_complementary=cfg["diffusion"]["train_complementary_masks"],
                    block_size=block_size(cfg), window=cfg["data"]["window"])
    if cfg["objective"] == "ar":
        return Autoregressive(tokenizer.mask_id, tokenizer.generable_ids, vocab)
    raise ValueError(f"unknown objective {cfg['objective']!r} (known: mdlm, ar)")
