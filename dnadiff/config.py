"""Configuration: one schema (``dnadiff/schema/config.schema.yaml``) validates and fills defaults.

The Snakemake workflow validates ``config/config.yaml`` against the same file, so there is one
copy of every default.
"""

from __future__ import annotations

import copy
import difflib
import json
import math

import jsonschema
import yaml

from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.io import existing_file
from dnadiff.models.registry import BACKBONES, conv_width_problem
from dnadiff.patterns import check_exclude_patterns
from dnadiff.resolve import probe_shape, rename_old_keys, resolve_section
from dnadiff.schema import TASK_COMMON_KEYS, load_schema, task_type_keys

#: nesting of mappings and lists a config may have (the schema's ``x-max-depth``)
MAX_DEPTH = int(load_schema()["x-max-depth"])


def _validator(schema):
    base = jsonschema.validators.validator_for(schema)
    validate_props = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})(schema)


def _describe(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        parts = []
        for key in extra:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f"{path}.{key}" if error.absolute_path else key
            parts.append(f"unknown key {where!r}{hint}")
        return "; ".join(parts) + f"; allowed here: {', '.join(allowed)}"
    if error.validator == "type":
        return (f"key {path!r}: {error.instance!r} has the wrong type "
                f"(expected {error.validator_value})")
    why = error.schema.get("x-bound") if isinstance(error.schema, dict) else None
    if error.validator == "maxItems":  # the count, not the whole list
        return (f"key {path!r}: {len(error.instance)} items, more than the maximum of "
                f"{error.validator_value}" + (f": {why}" if why else ""))
    if why and error.validator in ("maximum", "exclusiveMaximum"):
        return f"key {path!r}: {error.message}: {why}"
    return f"key {path!r}: {error.message}"


def _check_model(cfg: dict, source: str) -> None:
    """Backbone constraints the schema cannot express (the registry's checks)."""
    model = cfg["model"]
    spec = BACKBONES[model["backbone"]]
    causal = cfg["objective"] == "ar" or cfg["compare_ar"]
    problem = spec.problem(model, causal)
    if problem:
        raise DnadiffError(f"{source}: {'key ' if problem.startswith(chr(39)) else ''}{problem}")
    if spec.rc_equivariant and model["rc_conjoin"]:
        raise DnadiffError(f"{source}: key 'model.rc_conjoin' is for backbones that are not "
                           f"reverse-complement equivariant: {spec.name} is equivariant already")
    size = cfg["diffusion"]["block_size"]
    if size is not None and size < cfg["data"]["window"] and cfg["objective"] == "mdlm":
        why = ("the DiT is the backbone with block diffusion (its attention and convolution "
               f"take the block mask); {spec.name} is not" if spec.name != "dit" else
               "each block has its own time, and a time-conditioned model takes one time per "
               "window: set 'model.time_conditioning' false" if model["time_conditioning"] else
               "strand averaging reads the window right to left, which the blocks cannot: set "
               "'model.rc_conjoin' false" if model["rc_conjoin"] else
               f"the convolutions inside the DiT's blocks ('model.layer_conv', "
               f"{model['layer_conv']}) run whole windows only: set it to 0"
               if model["layer_conv"] else None)
        if why:
            raise DnadiffError(f"{source}: key 'diffusion.block_size' ({size}): {why}")
    if model["rc_conjoin"] and cfg["objective"] == "ar":
        raise DnadiffError(f"{source}: key 'model.rc_conjoin' averages over both strands, which "
                           "looks ahead: it cannot be used with the AR objective (with "
                           "compare_ar the AR baseline is simply not conjoined)")


def _check_downstream(cfg: dict, source: str) -> None:
    """Per-type required keys of downstream tasks (the schema's table; its defaults are filled
    in already, so only keys without one can be missing), unique names, the conditional
    task."""
    names = []
    keys = task_type_keys()
    props = load_schema()["properties"]["downstream"]["properties"]["tasks"]["items"][
        "properties"]
    for i, task in enumerate(cfg["downstream"]["tasks"]):
        required, optional = keys[task["type"]]
        for key in required:
            if key not in task:
                raise DnadiffError(f"{source}: key 'downstream.tasks.{i}' ({task['name']}): a "
                                   f"{task['type']} task needs '{key}'")
        # another type's key would be ignored: refused, unless it holds its default (which a
        # filled-in config, e.g. Snakemake's, writes into every task)
        own = set(TASK_COMMON_KEYS) | set(required) | set(optional)
        for key in task:
            if key not in own and task[key] != props[key].get("default", ...):
                users = [t for t, (req, opt) in keys.items() if key in req + opt]
                raise DnadiffError(f"{source}: key 'downstream.tasks.{i}.{key}' "
                                   f"({task['name']}): a {task['type']} task has no '{key}' "
                                   f"(it is a key of {', '.join(users)} tasks); allowed "
                                   f"here: {', '.join(sorted(own))}")
        names.append(task["name"])
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DnadiffError(f"{source}: key 'downstream.tasks': task names must be unique "
                           f"({', '.join(dup)} repeated)")
    cond = cfg["conditional"]["task"]
    if cond is not None:
        if cond not in names:
            raise DnadiffError(f"{source}: key 'conditional.task': {cond!r} is not a downstream "
                               f"task (tasks: {', '.join(names) or 'none'})")
        if "finetune" not in cfg["downstream"]["methods"]:
            raise DnadiffError(f"{source}: key 'conditional.task' needs the finetune method in "
                               "'downstream.methods' (its best model is the oracle)")


def _check_text(cfg: dict, source: str) -> None:
    """Settings that only make sense for DNA."""
    if cfg["modality"] != "text":
        return
    model = cfg["model"]
    if (BACKBONES[model["backbone"]].rc_equivariant or model["rc_conjoin"]
            or cfg["sample"]["rc_conjoin"]
            or cfg["evaluate"]["rc_conjoin"]):
        raise DnadiffError(f"{source}: modality 'text' has no reverse complement: use backbone "
                           "dit or mamba without 'rc_conjoin' (model, sample, evaluate)")
    if cfg["downstream"]["tasks"] or cfg["conditional"]["task"]:
        raise DnadiffError(f"{source}: keys 'downstream.tasks' and 'conditional.task' are DNA "
                           "benchmarks; set 'downstream: {tasks: []}' and 'conditional: "
                           "{task: null}' for modality 'text'")
    if cfg["sample"]["template"]:
        raise DnadiffError(f"{source}: key 'sample.template' is for DNA; use 'sample.prefix' "
                           "for text")


def _check_probes(cfg: dict, source: str) -> None:
    window = cfg["data"]["window"]
    probe = cfg["probe"]
    if probe["enabled"]:
        masks, prompt = probe_shape(cfg)
        if prompt < 1 or prompt + masks > window:
            raise DnadiffError(f"{source}: keys 'probe.prompt_length' + 'probe.masks' "
                               f"({prompt} + {masks}) must fit in 'data.window' "
                               f"({window}) with a prompt of at least one token")
    trap = cfg["marginal_trap"]
    if trap["enabled"] and resolve_section("marginal_trap", trap, window)["length"] > window:
        raise DnadiffError(f"{source}: key 'marginal_trap.length' ({trap['length']}) must be at "
                           f"most 'data.window' ({window})")


def _check_finite(value, source: str, path: str = "") -> None:
    """NaN and infinities pass every range check of a schema (comparisons with NaN are
    false): refuse them anywhere in a config."""
    if isinstance(value, float) and not math.isfinite(value):
        raise DnadiffError(f"{source}: key {path or '<top level>'!r}: {value} is not a finite "
                           "number")
    if isinstance(value, dict):
        for key, sub in value.items():
            _check_finite(sub, source, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _check_finite(sub, source, f"{path}.{i}")


def _check_depth(value, source: str) -> None:
    """Refuse mappings and lists nested more than :data:`MAX_DEPTH` levels deep, without
    recursion (a container shared by several parents is walked again only when reached
    deeper than before, so at most MAX_DEPTH times)."""
    deepest: dict[int, int] = {}
    todo = [(value, 0)]
    while todo:
        node, depth = todo.pop()
        if not isinstance(node, (dict, list)) or deepest.get(id(node), -1) >= depth:
            continue
        if depth >= MAX_DEPTH:
            raise DnadiffError(f"{source}: the configuration is nested more than {MAX_DEPTH} "
                               "levels deep (its deepest key is 5 levels down)")
        deepest[id(node)] = depth
        todo.extend((sub, depth + 1) for sub in (node.values() if isinstance(node, dict)
                                                 else node))


def _check_sampling(cfg: dict, source: str) -> None:
    """Sampler and training options that contradict each other."""
    sample, diffusion = cfg["sample"], cfg["diffusion"]
    given = [k for k in ("k", "threshold", "entropy_bound") if sample[k] is not None]
    if len(given) > 1:
        keys = " and ".join(repr(f"sample.{k}") for k in given)
        raise DnadiffError(f"{source}: keys {keys}: the "
                           "confidence sampler takes one of them (k per step, a threshold or "
                           "an entropy bound), not several")
    if sample["remdm_t_on"] <= sample["remdm_t_off"]:
        raise DnadiffError(f"{source}: keys 'sample.remdm_t_on' ({sample['remdm_t_on']:g}) and "
                           f"'sample.remdm_t_off' ({sample['remdm_t_off']:g}): the remasking "
                           "loop runs from t_on down to t_off, so t_on must be larger (else "
                           "nothing is ever remasked)")
    if diffusion["train_discrete_T"] is not None and diffusion["train_time_power"] != 1:
        raise DnadiffError(f"{source}: keys 'diffusion.train_discrete_T' "
                           f"({diffusion['train_discrete_T']}) and 'diffusion.train_time_power' "
                           f"({diffusion['train_time_power']:g}): discrete-time training draws "
                           "its times on the T-step grid; the time power is for continuous "
                           "time only (set it to 1, or train_discrete_T to null)")

    rates = diffusion["train_mask_range"]
    if rates is not None and not rates[0] < rates[1]:
        raise DnadiffError(f"{source}: key 'diffusion.train_mask_range' ({list(rates)}): "
                           "the lowest masking rate must come first and be smaller than the "
                           "highest, e.g. [0.3, 0.8]")
    if rates is not None and diffusion["train_discrete_T"] is not None:
        raise DnadiffError(f"{source}: keys 'diffusion.train_discrete_T' "
                           f"({diffusion['train_discrete_T']}) and 'diffusion.train_mask_range' "
                           f"({list(rates)}): clipped masking rates are for continuous time "
                           "only (set train_discrete_T or train_mask_range to null)")
    if diffusion["train_complementary_masks"]:
        clash = [f"'diffusion.{k}' ({v})" for k, v in (
                ("schedule", diffusion["schedule"]),
                ("train_discrete_T", diffusion["train_discrete_T"]),
                ("train_mask_range", rates)) if v is not None and v != "loglinear"]
        if clash:
            raise DnadiffError(f"{source}: key 'diffusion.train_complementary_masks' cannot be "
                               f"combined with {', '.join(clash)}: complementary masks need the "
                               "loglinear schedule, continuous times and the full range of "
                               "masking rates")


def _coerce_integers(value, schema: dict):
    """Integer keys given as integer-valued floats (``steps: 5.0``, which JSON Schema counts
    as integers) become ints, so no later arithmetic sees a float."""
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if isinstance(value, float) and "integer" in types and "number" not in types \
            and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: _coerce_integers(v, props.get(k, {})) for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_coerce_integers(v, schema["items"]) for v in value]
    return value


def validate_config(cfg: dict | None, source: str = "config") -> dict:
    """Validate ``cfg`` and return a deep copy with every default filled in."""
    schema = load_schema()
    _check_depth(cfg, source)  # before anything walks it recursively (deepcopy)
    cfg = copy.deepcopy(cfg) if cfg is not None else {}
    if not isinstance(cfg, dict):
        raise DnadiffError(f"{source}: the configuration must be a mapping of keys to values")
    _check_finite(cfg, source)
    rename_old_keys(cfg, source)
    errors = sorted(_validator(schema).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise DnadiffError(f"{source}: {_describe(errors[0])}")
    cfg = _coerce_integers(cfg, schema)
    model = cfg["model"]
    _check_model(cfg, source)
    _check_downstream(cfg, source)
    problem = conv_width_problem(model["conv_kernel"], model["layer_conv"])
    if problem:
        raise DnadiffError(f"{source}: key {problem}")
    sample, window = cfg["sample"], cfg["data"]["window"]
    stride = sample["semi_ar_stride"]
    if stride is not None and stride >= window:
        raise DnadiffError(f"{source}: key 'sample.semi_ar_stride' ({stride}) must be smaller "
                           f"than 'data.window' ({window}): each block keeps context")
    if sample["template"]:
        if sample["prefix"] or sample["suffix"] or sample["length"] is not None:
            raise DnadiffError(f"{source}: key 'sample.template' cannot be combined with "
                               "'sample.prefix', 'sample.suffix' or 'sample.length'")
        if "-" not in sample["template"]:
            raise DnadiffError(f"{source}: key 'sample.template' has no '-' position to "
                               "generate")
    check_exclude_patterns(cfg["data"]["exclude"], source)
    _check_sampling(cfg, source)
    _check_text(cfg, source)
    _check_probes(cfg, source)
    fixed = len(sample["prefix"]) + len(sample["suffix"])
    length = resolve_section("sample", sample, window)["length"]
    if cfg["modality"] == "dna" and fixed >= length:
        raise DnadiffError(f"{source}: keys 'sample.prefix' and 'sample.suffix' ({fixed} "
                           f"tokens) leave nothing to generate in 'sample.length' ({length})")
    return cfg


class _AliasError(Exception):
    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: ``*name`` (and merge keys ``<<: *name``) copy a
    whole value, and nested copies of copies expand exponentially (the "billion laughs")."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _AliasError(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


def load_config(path=None, overrides: str | None = None) -> dict:
    """Read a YAML config file and/or a JSON string of overrides; validate; fill defaults."""
    cfg: dict = {}
    source = "config"
    if path is not None:
        path = existing_file(path, "a YAML config file", "config file not found")
        source = str(path)
        try:
            cfg = yaml.load(path.read_text(), Loader=_ConfigLoader) or {}
        except _AliasError as exc:
            raise InputFileError(path, f"line {exc.line}: YAML aliases (*name) are not allowed "
                                       "in a config (each one copies a whole value, so a few "
                                       "lines can expand without bound): write the value "
                                       "out") from None
        except yaml.YAMLError as exc:
            raise InputFileError(path, f"invalid YAML ({str(exc).splitlines()[0]})") from None
        except RecursionError:
            raise InputFileError(path, f"the configuration is nested more than {MAX_DEPTH} "
                                       "levels deep") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(path, f"cannot be read ({exc})") from None
        if not isinstance(cfg, dict):
            raise InputFileError(path, "the configuration must be a mapping of keys to values")
        _check_depth(cfg, source)
    if overrides:
        try:
            extra = json.loads(overrides)
        except json.JSONDecodeError as exc:
            raise DnadiffError(f"--config-json: invalid JSON ({exc})") from None
        except RecursionError:
            raise DnadiffError(f"--config-json: nested more than {MAX_DEPTH} levels deep"
                               ) from None
        if not isinstance(extra, dict):
            raise DnadiffError("--config-json: must be a JSON object (a mapping of keys to "
                               f"values), got {type(extra).__name__}")
        _check_depth(extra, "--config-json")
        cfg = deep_merge(cfg, extra)
        source = f"{source} + --config-json" if path else "--config-json"
    return validate_config(cfg, source)


def deep_merge(base: dict, extra: dict) -> dict:
    """``extra`` merged into a copy of ``base`` (nested mappings key by key)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
