"""The task types: their readers and keys (``READERS``), a config's task as a spec
(``task_spec``), spec checks and ``load_task``.

``READERS`` is the one table of per-type keys: ``dnadiff.config`` checks a config's tasks
against it and :func:`task_spec` hands a reader only the keys of its type.
Defaults and ranges of the keys come from the schema (``downstream.tasks`` in
``dnadiff/schema/config.schema.yaml``), so a spec read here and a config's task agree.
Unknown keys are refused (typos).
"""

from __future__ import annotations

import copy
import functools

import numpy as np

from dnadiff.errors import DnadiffError
from dnadiff.schema import TASK_COMMON_KEYS, load_schema, task_type_keys
from dnadiff.tasks.annotation import load_annotation
from dnadiff.tasks.base import SPLITS, LabeledTask
from dnadiff.tasks.coordinates import load_coordinates
from dnadiff.tasks.fasta_pair import load_fasta_pair
from dnadiff.tasks.genomic_benchmarks import load_genomic_benchmarks
from dnadiff.tasks.gue import load_gue

#: Keys of every task type: ``seed`` (of splits, subsamples and negatives made here),
#: ``max_per_split`` (null, or a deterministic stratified subsample of each split to at most
#: this many sequences), ``fixed_length`` (all sequences must share one length) and
#: ``split_fractions`` (train/validation/test, used only where the data has no split).
COMMON_KEYS = TASK_COMMON_KEYS

#: the reader of each task type, one line each (its keys are the schema's ``x-keys-by-type``)
_READ = {"gue": load_gue, "genomic_benchmarks": load_genomic_benchmarks,
         "coordinates": load_coordinates, "fasta_pair": load_fasta_pair,
         "annotation": load_annotation}

#: type: (reader, required keys, optional keys); defaults of optional keys are the schema's.
READERS = {t: (_READ[t], *keys) for t, keys in task_type_keys().items()}


def task_keys(typ: str) -> set[str]:
    """Every key a task of type ``typ`` may have."""
    _, required, optional = READERS[typ]
    return {*COMMON_KEYS, *required, *optional}


@functools.cache
def task_schema() -> dict:
    """The schema's properties of one downstream task (``downstream.tasks.items``)."""
    tasks = load_schema()["properties"]["downstream"]["properties"]["tasks"]
    return tasks["items"]["properties"]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _in_range(v, prop: dict) -> bool:
    """Whether number ``v`` meets the schema's lower bound ``prop``."""
    if "exclusiveMinimum" in prop:
        return v > prop["exclusiveMinimum"]
    return v >= prop["minimum"]


def _range_text(prop: dict) -> str:
    if "exclusiveMinimum" in prop:
        return f"> {prop['exclusiveMinimum']}"
    return f">= {prop['minimum']}"


def check_spec(spec: dict) -> dict:
    """``spec`` checked, with the schema's defaults filled in."""
    if not isinstance(spec, dict):
        raise DnadiffError(f"benchmark task spec must be a mapping, got {type(spec).__name__}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise DnadiffError(f"benchmark task spec needs a non-empty string 'name' (got {spec!r})")
    where = f"benchmark task {name!r}"
    typ = spec.get("type")
    if typ not in READERS:
        raise DnadiffError(f"{where}: unknown type {typ!r} (known: {', '.join(READERS)})")
    _, required, optional = READERS[typ]
    unknown = set(spec) - task_keys(typ)
    if unknown:
        raise DnadiffError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for type "
                           f"{typ} (allowed: {', '.join(sorted(task_keys(typ)))})")
    missing = set(required) - set(spec)
    if missing:
        raise DnadiffError(f"{where}: type {typ} needs key(s) {', '.join(sorted(missing))}")
    props = task_schema()
    cfg = {**{k: copy.deepcopy(props[k]["default"]) for k in (*COMMON_KEYS, *optional)
              if "default" in props[k]}, **spec}
    if not _is_int(cfg["seed"]):
        raise DnadiffError(f"{where}: seed must be an integer, got {cfg['seed']!r}")
    m, prop = cfg["max_per_split"], props["max_per_split"]
    if m is not None and (not _is_int(m) or not _in_range(m, prop)):
        raise DnadiffError(f"{where}: max_per_split must be an integer {_range_text(prop)} or "
                           f"null, got {m!r}")
    if not isinstance(cfg["fixed_length"], bool):
        raise DnadiffError(f"{where}: fixed_length must be true or false")
    fr, prop = cfg["split_fractions"], props["split_fractions"]["items"]
    if (not isinstance(fr, (list, tuple)) or len(fr) != len(SPLITS)
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                       and _in_range(x, prop) for x in fr)
            or abs(sum(fr) - 1) > 1e-6):
        raise DnadiffError(f"{where}: split_fractions must be {len(SPLITS)} numbers "
                           f"{_range_text(prop)} (train, validation, test) summing to 1, "
                           f"got {fr!r}")
    cfg["split_fractions"] = [float(x) for x in fr]
    if typ == "annotation":
        _check_annotation(cfg, where, props)
    return cfg


def _check_annotation(cfg: dict, where: str, props: dict) -> None:
    kinds = props["kind"]["enum"]
    if cfg["kind"] not in kinds:
        raise DnadiffError(f"{where}: kind must be {' or '.join(map(repr, kinds))}, "
                           f"got {cfg['kind']!r}")
    if not _is_int(cfg["length"]) or not _in_range(cfg["length"], props["length"]):
        raise DnadiffError(f"{where}: length must be an integer {_range_text(props['length'])},"
                           f" got {cfg['length']!r}")
    if cfg["validation_contigs"] is None:
        cfg["validation_contigs"] = []
    for key in ("validation_contigs", "test_contigs"):
        v = cfg[key]
        if isinstance(v, str) or not isinstance(v, (list, tuple)):
            raise DnadiffError(f"{where}: {key} must be a list of contig names, got {v!r}")
    if not cfg["test_contigs"]:
        raise DnadiffError(f"{where}: test_contigs must name at least one contig")


def task_spec(cfg: dict, name: str, genome_fasta=None, annotation=None) -> dict:
    """The config's task ``name`` with the run's genome, annotation and splits filled in."""
    specs = {t["name"]: t for t in cfg["downstream"]["tasks"]}
    if name not in specs:
        raise DnadiffError(f"no downstream task {name!r} in the config (tasks: "
                           f"{', '.join(specs) or 'none'})")
    spec = copy.deepcopy(specs[name])
    if spec["type"] == "annotation":
        spec["fasta"] = spec["fasta"] or genome_fasta
        spec["annotation"] = spec["annotation"] or annotation
        if not spec["fasta"] or not spec["annotation"]:
            raise DnadiffError(f"task {name!r}: an annotation task needs a genome and an "
                               "annotation (task keys 'fasta' and 'annotation', or the run's)")
        splits = cfg["data"]["splits"]
        if spec["validation_contigs"] is None:
            spec["validation_contigs"] = list(splits["validation"])
        if spec["test_contigs"] is None:
            spec["test_contigs"] = list(splits["test"])
    elif spec["type"] == "coordinates":
        spec["reference"] = spec["reference"] or genome_fasta
    # the schema fills every task key; a reader sees only those of its type
    keep = task_keys(spec["type"])
    return {k: v for k, v in spec.items() if k in keep}


def load_task(spec: dict) -> LabeledTask:
    """Read the labeled task described by ``spec`` (see the reader of its type)."""
    cfg = check_spec(spec)
    return READERS[cfg["type"]][0](cfg)
