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
