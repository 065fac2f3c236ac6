"""The one configuration schema (``config.schema.yaml``): every key, its documentation and
its default. Code that needs a default reads it here rather than writing it again."""

from __future__ import annotations

import copy
import functools
from importlib import resources

import yaml


@functools.cache
def _schema() -> dict:
    return yaml.safe_load(resources.files(__name__).joinpath("config.schema.yaml").read_text())


def load_schema() -> dict:
    """A copy of the schema (callers may extend it)."""
    return copy.deepcopy(_schema())


def defaults(section: str) -> dict:
    """The default of every key of a top-level ``section`` (e.g. ``model``)."""
    props = _schema()["properties"][section]["properties"]
    return {key: copy.deepcopy(sub["default"]) for key, sub in props.items() if "default" in sub}


#: keys every downstream task has, whatever its type
TASK_COMMON_KEYS = ("name", "type", "seed", "max_per_split", "fixed_length", "split_fractions")


def task_type_keys() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """type -> (required keys, optional keys) of a downstream task beyond the common ones: the
    schema's one table (``x-keys-by-type``)."""
    table = _schema()["properties"]["downstream"]["properties"]["tasks"]["items"][
        "x-keys-by-type"]
    return {t: (tuple(k.get("required", ())), tuple(k.get("optional", ())))
            for t, k in table.items()}


def downstream_protocols() -> dict[str, dict]:
    """name -> the finetune keys a named downstream protocol sets (the schema's one table,
    ``x-protocols`` of ``downstream.protocol``)."""
    return copy.deepcopy(_schema()["properties"]["downstream"]["properties"]["protocol"][
        "x-protocols"])


def _input_keys(node: dict, at: tuple = ()) -> list[tuple]:
    found = [at] if node.get("x-input") else []
    for key, sub in node.get("properties", {}).items():
        found += _input_keys(sub, at + (key,))
    if isinstance(node.get("items"), dict):
        found += _input_keys(node["items"], at + ("[]",))
    return found


def input_paths(cfg: dict) -> dict[str, str]:
    """Every file a config names as an input (the schema's keys marked ``x-input``), as
    ``{"key 'downstream.tasks[0].path'": path}``: no output of a verb may land on one."""
    found: dict[str, str] = {}

    def walk(value, rest: tuple, label: str) -> None:
        if not rest:
            if isinstance(value, str) and value:
                found[f"key '{label}'"] = value
            return
        head, tail = rest[0], rest[1:]
        if head == "[]":
            for i, item in enumerate(value if isinstance(value, list) else []):
                walk(item, tail, f"{label}[{i}]")
        elif isinstance(value, dict) and head in value:
            walk(value[head], tail, f"{label}.{head}" if label else head)

    for keys in _input_keys(_schema()):
        walk(cfg, keys, "")
    return found
