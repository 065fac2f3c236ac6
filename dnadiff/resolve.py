"""Config resolution, the steps around validation: old key spellings turned into the new ones
(for one release), and every key whose null means "computed" filled from the rest of its
section and the model's window.

Both are read from the schema, never written here: an old spelling is a key marked
``x-renamed-to`` (kept in the schema, without a default, so that Snakemake's validation against
the same file accepts it) or a value listed in ``x-old-values``; a computed key is marked
``x-computed`` and has its formula in :data:`COMPUTED`. ``sample.sampler`` is not one of them:
its null is the checkpoint objective's own sampler
(:func:`dnadiff.diffusion.samplers.sampler_for`).
"""

from __future__ import annotations

import copy
import logging

from dnadiff.schema import _schema, defaults

log = logging.getLogger(__name__)


def _remdm_eta(sample: dict, window) -> float:
    table = _schema()["properties"]["sample"]["properties"]["remdm_eta"]["x-remdm-eta"]
    return table[sample["remdm_schedule"]]


def _probe_masks(probe: dict, window: int) -> int:
    return min(128, window // 2)  # 128: the paper's count, or half a shorter window


#: (section, key) -> fill(section with the keys before it filled, window): every key the schema
#: marks ``x-computed``, in the order they are filled (``probe.prompt_length`` needs the masks)
COMPUTED = {
    ("sample", "length"): lambda s, window: window,
    ("sample", "semi_ar_stride"): lambda s, window: window // 2,
    ("sample", "remdm_eta"): _remdm_eta,
    ("marginal_trap", "length"): lambda s, window: window,
    ("probe", "masks"): _probe_masks,
    ("probe", "prompt_length"): lambda s, window: window - s["masks"],
    ("conditional", "sampling_steps"): lambda s, window: window,
}

#: the computed keys that need no window
_NO_WINDOW = {("sample", "remdm_eta")}


def resolve_section(name: str, section: dict, window: int | None = None) -> dict:
    """A copy of config section ``name`` (missing keys: the schema's defaults) with every
    computed key left null filled; ``window``: the model's window (a checkpoint's
    ``data.window``), without which only the keys that need none are filled."""
    out = {**defaults(name), **copy.deepcopy(section)}
    for (sec, key), fill in COMPUTED.items():
        if sec == name and out.get(key) is None and (window is not None
                                                      or (sec, key) in _NO_WINDOW):
            out[key] = fill(out, window)
    return out


def resolve(cfg: dict, window: int | None = None) -> dict:
    """A copy of a validated config with every computed key filled, for a model of ``window``
    positions (default: the config's ``data.window``)."""
    window = cfg["data"]["window"] if window is None else window
    out = copy.deepcopy(cfg)
    for name in dict.fromkeys(sec for sec, _ in COMPUTED):
        if name in out:
            out[name] = resolve_section(name, out[name], window)
    return out


def probe_shape(cfg: dict) -> tuple[int, int]:
    """(masks, prompt tokens) of the positional-collapse probe."""
    probe = resolve_section("probe", cfg["probe"], cfg["data"]["window"])
    return probe["masks"], probe["prompt_length"]


def rename_old_keys(cfg, source: str = "config"):
    """``cfg`` (changed in place, and returned) with every old spelling the schema lists
    replaced by the new one, each logged once as a one-line deprecation warning. Where both
    spellings are given the old one wins (a config filled by Snakemake holds the new key's
    default beside the old key the user wrote)."""
    _rename(_schema(), cfg, "", source)
    return cfg


def _rename(node: dict, value, path: str, source: str) -> None:
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            _rename(node["items"], item, f"{path}.{i}", source)
        return
    if not isinstance(value, dict):
        return
    for key, sub in node.get("properties", {}).items():
        if key not in value:
            continue
        where = f"{path}.{key}" if path else key
        new = sub.get("x-renamed-to")
        if new:
            log.warning("%s: key %r is deprecated, write %r instead (the old spelling is "
                        "accepted until the next release)", source, where,
                        where.rsplit(".", 1)[0] + "." + new if "." in where else new)
            value[new] = value.pop(key)
            continue
        old = sub.get("x-old-values", {})
        if type(value[key]) is bool and value[key] in old:
            log.warning("%s: key %r: %r is deprecated, write %r instead (the old value is "
                        "accepted until the next release)", source, where, value[key],
                        old[value[key]])
            value[key] = old[value[key]]
        _rename(sub, value[key], where, source)
