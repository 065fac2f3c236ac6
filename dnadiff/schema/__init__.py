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
