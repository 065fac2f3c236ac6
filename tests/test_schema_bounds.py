"""Every number of the config schema that can exhaust memory or time is bounded (a ``maximum``
with its reason in ``x-bound`` and the description), and an absurd value is refused with one
line naming the key: fast, in-process, no training."""

from __future__ import annotations

import pytest

from dnadiff.config import validate_config
from dnadiff.errors import DnadiffError
from dnadiff.schema import load_schema

#: numbers left without a maximum (by key name), each for a reason: they cost no memory or time
EXEMPT = {
    # a too-large rate diverges, and training stops with an error naming it (test_hostile.py)
    "lr": "optimizer setting", "lr_grid": "optimizer setting",
    "weight_decay": "optimizer setting", "grad_clip": "optimizer setting (large = off)",
    # extreme values give degenerate but finite samples, at the same cost
    "temperature": "sampling weight", "guidance": "sampling weight",
}

WINDOW = 2**22
#: keys whose maximum is accepted only next to others (each checked by validate_config)
CONTEXT = {
    "model.heads": {"model": {"dim": 65536}},
    "sample.semi_ar_stride": {"data": {"window": WINDOW}},
    "probe.masks": {"data": {"window": WINDOW}, "probe": {"prompt_length": 1}},
    "probe.prompt_length": {"data": {"window": WINDOW}, "probe": {"masks": 1}},
    "marginal_trap.length": {"data": {"window": WINDOW}},
    "sample.remdm_t_on": {"sample": {"remdm_t_off": 0.5}},
}
ANNOTATION = {"name": "a", "type": "annotation", "test_contigs": ["c"]}


def numeric_keys() -> dict[str, dict]:
    """Dotted path (``[]`` for a list's items) -> schema of every number of the config."""
    found = {}

    def walk(node, path):
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if ("integer" in types or "number" in types) and "x-renamed-to" not in node:
            # (an old spelling is bounded as its new key, checked there)
            found[path] = node
        for key, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{key}" if path else key)
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(load_schema(), "")
    return found


def leaf(path: str) -> str:
    return path.split(".")[-1].removesuffix("[]")


def upper(node: dict):
    return node.get("maximum", node.get("exclusiveMaximum"))


BOUNDED = {p: n for p, n in numeric_keys().items() if upper(n) is not None}
INTEGERS = sorted(p for p, n in BOUNDED.items() if "integer" in (
    n["type"] if isinstance(n["type"], list) else [n["type"]]))


def config_with(path: str, value) -> tuple[dict, str]:
    """A config setting ``path`` to ``value`` (next to what it needs), and the key an error
    names."""
    cfg: dict = {"run": "x"}
    for section, keys in CONTEXT.get(path, {}).items():
        cfg.setdefault(section, {}).update(keys)
    parts = path.split(".")
    node, named = cfg, []
    for part in parts[:-1]:
        name = part.removesuffix("[]")
        if part.endswith("[]"):  # downstream.tasks[]: one task of a type that has the key
            task = dict(ANNOTATION) if parts[-1] == "length" else {
                "name": "g", "type": "gue", "path": "x"}
            node.setdefault(name, [task])
            node, named = node[name][0], [*named, name, "0"]
        else:
            node, named = node.setdefault(name, {}), [*named, name]
    last = parts[-1]
    if last.endswith("[]"):
        name = last.removesuffix("[]")
        if name == "train_mask_range":  # [low, high]: low < high, so the value goes last
            node[name] = [0.0, value]
            return cfg, ".".join([*named, name, "1"])
        size = {"split_fractions": 3}.get(name, 1)
        node[name] = [value] * size
        return cfg, ".".join([*named, name, "0"])
    node[last] = value
    return cfg, ".".join([*named, last])


def test_every_number_has_a_minimum_and_a_maximum():
    keys = numeric_keys()
    assert len(keys) > 90, sorted(keys)
    unbounded = []
    for path, node in keys.items():
        assert "minimum" in node or "exclusiveMinimum" in node, f"{path}: no minimum"
        if upper(node) is None:
            unbounded.append(path)
    assert all(leaf(p) in EXEMPT for p in unbounded), sorted(
        p for p in unbounded if leaf(p) not in EXEMPT)
    # the exemptions are floats: no integer (a count, a size) is left without a maximum
    assert all(keys[p]["type"] in ("number", ["number", "null"]) for p in unbounded), unbounded
    assert {leaf(p) for p in unbounded} == set(EXEMPT), "an exemption no longer needed"


@pytest.mark.parametrize("path", sorted(BOUNDED))
def test_a_bound_beyond_a_probability_gives_its_reason(path):
    node = BOUNDED[path]
    if upper(node) <= 1:  # a probability or a fraction: the range is the meaning
        return
    assert node.get("x-bound"), f"{path}: a maximum without its reason (x-bound)"
    where = path.removesuffix("[]")
    owner = numeric_keys().get(where) or _node(where)
    text = " ".join(owner.get("description", "").split())
    assert "at most" in text.lower() or "2^32 - 1" in text, f"{path}: description lacks it"


def _node(path: str) -> dict:
    node = load_schema()
    for part in path.split("."):
        node = node["properties"][part.removesuffix("[]")]
        if part.endswith("[]"):
            node = node["items"]
    return node


@pytest.mark.parametrize("path", sorted(BOUNDED))
def test_just_above_the_maximum_is_refused_and_the_maximum_accepted(path):
    node = BOUNDED[path]
    if "maximum" in node:
        top = node["maximum"]
        above = top + 1 if isinstance(top, int) and top > 1 else top * 1.001 + 1e-9
        cfg, key = config_with(path, top)
        validate_config(cfg)  # the maximum itself is fine
    else:  # exclusiveMaximum: the bound itself is the first value refused
        above = node["exclusiveMaximum"]
    cfg, key = config_with(path, above)
    with pytest.raises(DnadiffError) as ei:
        validate_config(cfg)
    line = str(ei.value)
    assert "\n" not in line and f"key '{key}'" in line, line
    assert "maximum" in line, line
    if node.get("x-bound"):
        assert " ".join(node["x-bound"].split()) in line


@pytest.mark.parametrize("path", INTEGERS)
def test_absurd_integer_is_refused_in_one_line(path):
    cfg, key = config_with(path, 2**63)
    with pytest.raises(DnadiffError) as ei:
        validate_config(cfg)
    line = str(ei.value)
    assert "\n" not in line and f"key '{key}'" in line and "9223372036854775808" in line
    assert len(line) < 400, line


def test_the_main_bounds_are_generous():
    """An 8-GPU node training a 1B-parameter model on 1 Mb windows is not refused."""
    validate_config({"run": "big", "data": {"window": 2**20},
                     "model": {"dim": 16384, "layers": 512, "heads": 128, "cond_dim": 1024},
                     "train": {"steps": 10**9, "batch_size": 10**6, "micro_batch_size": 1,
                               "devices": 8, "num_nodes": 64, "val_windows": 10**6},
                     "sample": {"num_samples": 10**6, "steps": 2**20, "batch_size": 1024},
                     "evaluate": {"max_windows": 10**8, "discrete_T": [1000, 10**6]}})


@pytest.mark.parametrize("path,count", [("evaluate.discrete_T", 65),
                                        ("downstream.finetune.seeds", 10**6),
                                        ("marginal_trap.divisors", 65)])
def test_lists_that_multiply_the_work_are_bounded_in_one_short_line(path, count):
    section, *rest = path.split(".")
    cfg: dict = {"run": "x", section: {}}
    node = cfg[section]
    for part in rest[:-1]:
        node = node.setdefault(part, {})
    node[rest[-1]] = [1] * count
    with pytest.raises(DnadiffError) as ei:
        validate_config(cfg)
    line = str(ei.value)
    assert f"key '{path}': {count} items, more than the maximum of" in line
    assert len(line) < 300, line
