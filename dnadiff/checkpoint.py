"""The dnadiff checkpoint: weights + the full config + tokenizer, loaded with weights_only=True.

A checkpoint from the internet must not be able to run code, so it holds tensors and plain
Python containers only, and is always read with ``torch.load(..., weights_only=True)``.

An exported model (``dnadiff export``, :mod:`dnadiff.export`) is a folder of the same parts
without a pickle: ``model.safetensors`` (the weights; the EMA weights under ``ema.``) and
``config.json`` (everything else). :func:`load_checkpoint` reads either and returns the same
dict, after checking every tensor's name and shape against the model the config builds.

The classifier checkpoint (``save_classifier`` / ``load_classifier``, format
``dnadiff-classifier``): a fine-tuned :class:`~dnadiff.models.classifier.SequenceClassifier`
with its pretrained model's config and tokenizer, classes, input length and training record.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import torch

from dnadiff.config import validate_config
from dnadiff.data.prepared import json_depth, load_json_file, tokenizer_problem
from dnadiff.diffusion import build_objective
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.io import atomic_path
from dnadiff.models import build_backbone
from dnadiff.models.classifier import SequenceClassifier
from dnadiff.models.registry import BACKBONES
from dnadiff.models.scan import mamba_ssm_status
from dnadiff.tokenizers import tokenizer_from_dict

log = logging.getLogger(__name__)
FORMAT = "dnadiff-checkpoint"
VERSION = 1
CLASSIFIER_FORMAT = "dnadiff-classifier"
#: the files of an exported model folder, and the prefix of its EMA tensors
WEIGHTS_FILE, META_FILE, EMA_PREFIX = "model.safetensors", "config.json", "ema."
#: checkpoint entries that hold tensors (saved in WEIGHTS_FILE under these prefixes)
TENSOR_PARTS = {"state_dict": "", "ema_state_dict": EMA_PREFIX}
#: the deepest nesting of containers a checkpoint's config, tokenizer, metrics or data record
#: may have (a run config has 4 levels); deeper is refused before anything walks it
MAX_DEPTH = 32
#: why a pickle that asks for more than tensors and plain containers is refused
UNSAFE = ("holds Python objects other than tensors{what}; refusing to unpickle it (dnadiff "
          "only loads weights-only checkpoints, which cannot run code)")


def _cpu_state(state: dict) -> dict:
    return {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
            for k, v in state.items()}


def save_checkpoint(path, model, config: dict, tokenizer, step: int,
                    metrics: dict | None = None, ema_state: dict | None = None,
                    data: dict | None = None) -> None:
    """Write weights (+ EMA weights when given), the full config and the tokenizer (saved as
    its dict); ``data``: where the training data came from
    (:meth:`dnadiff.data.prepared.PreparedData.provenance`), which the model card of an export
    reports."""
    payload = {"format": FORMAT, "version": VERSION, "config": config,
               "tokenizer": tokenizer.to_dict(),
               "step": int(step), "metrics": metrics or {},
               "state_dict": _cpu_state(model.state_dict())}
    if data is not None:
        payload["data"] = data
    if ema_state is not None:
        payload["ema_state_dict"] = _cpu_state(ema_state)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def sniff_torch_file(path: Path) -> str | None:
    """Why ``path`` cannot be a file written by ``torch.save`` (empty, text, another format),
    or ``None`` when it starts like one (a zip archive, or a legacy pickle)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not head:
        return "is empty (0 bytes): a write was interrupted? Expected a checkpoint"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        first = (text.strip().splitlines() or [""])[0][:40]
        kind = f"a text file (it starts {first!r})"
    else:
        kind = f"not a PyTorch file (it starts with bytes {head[:8].hex()})"
    return f"is {kind}; expected a checkpoint written by dnadiff"


def load_checkpoint(path) -> dict:
    """Read a dnadiff checkpoint (``weights_only=True``: tensors and plain containers only, so
    a file from elsewhere cannot run code) and check its parts; every problem is one
    :class:`InputFileError` naming the file. Its ``tokenizer`` is the tokenizer object (the
    file holds its dict)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "checkpoint not found")
    if path.is_dir():
        return _load_folder(path)
    ckpt = _read_torch_file(path, "checkpoint")
    _check_format(path, ckpt, "checkpoint", "not a dnadiff checkpoint (a PyTorch file without "
                  f"format={FORMAT!r}; dnadiff train writes them)")
    _check_parts(path, ckpt)
    ckpt["_path"] = str(path)  # for error messages of later readers (not saved)
    return ckpt


def _read_torch_file(path: Path, what: str):
    """What ``torch.load(..., weights_only=True)`` reads from ``path``, a file from anywhere
    (``what``: the kind of file, for the message): one :class:`InputFileError` where it does not
    look like a PyTorch file or cannot be read as one."""
    problem = sniff_torch_file(path)
    if problem:
        raise InputFileError(path, problem)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read an untrusted file is "corrupt"
        raise InputFileError(path, _load_failure(exc, what)) from None


def _check_format(path, parts, kind: str, not_ours: str) -> None:
    """``parts`` (a checkpoint, or the config.json of an export) are in the format and version
    this dnadiff reads; else one :class:`InputFileError` naming ``path`` (``not_ours``: what
    it says of a file without the format; ``kind``: what has the version)."""
    if not isinstance(parts, dict) or parts.get("format") != FORMAT:
        raise InputFileError(path, not_ours)
    if parts.get("version") != VERSION:
        raise InputFileError(path, f"{kind} version {parts.get('version')} is not supported "
                                   f"(this dnadiff reads version {VERSION})")


def _load_failure(exc: BaseException, what: str) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in one complete sentence."""
    text = str(exc)
    wanted = re.search(r"GLOBAL\s+([A-Za-z_][\w.]{0,80})", text)
    if wanted or "unsupported global" in text.lower():  # a pickle asking for code
        return "unsafe " + what + ": it " + UNSAFE.format(
            what=f" (it asks for {wanted.group(1)})" if wanted else "")
    if "weights only load failed" in text.lower():  # not a pickle torch can read at all
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]{1,120})", text)
        return (f"corrupt (truncated?) {what}: torch.load with weights_only=True cannot read it"
                + (f" ({detail.group(1).strip()})" if detail else ""))
    if isinstance(exc, RecursionError):
        return f"corrupt {what}: containers nested too deeply to be read"
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    first = " ".join(first.split())
    if len(first) > 160:
        first = first[:160].rsplit(" ", 1)[0] + " ..."
    return (f"corrupt (truncated?) {what}: torch.load with weights_only=True cannot read it "
            f"({type(exc).__name__}: {first})")


def _load_folder(path: Path) -> dict:
    """An exported model folder (``dnadiff export``) as the dict :func:`load_checkpoint`
    returns for the ``.pt`` file it came from; every problem one line naming the file."""
    meta_path, weights_path = path / META_FILE, path / WEIGHTS_FILE
    if not (meta_path.exists() or weights_path.exists()):
        raise InputFileError(path, f"is a directory without {WEIGHTS_FILE} and {META_FILE}: "
                                   "expected a checkpoint file or a folder written by "
                                   "dnadiff export")
    for f in (meta_path, weights_path):
        if not f.is_file():
            raise InputFileError(f, f"not found: a model folder holds {WEIGHTS_FILE} and "
                                    f"{META_FILE} (dnadiff export writes them)")
    meta = load_json_file(meta_path, META_FILE)
    if isinstance(meta, (dict, list)) and json_depth(meta, MAX_DEPTH):
        raise InputFileError(meta_path, f"nests containers deeper than {MAX_DEPTH} levels: not "
                                        "the config.json of a dnadiff model")
    _check_format(meta_path, meta, "model", "not the config.json of a dnadiff model (no "
                  f"format={FORMAT!r}; dnadiff export writes them)")
    meta.pop("export", None)
    try:
        from safetensors.torch import load_file

        tensors = load_file(weights_path, device="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure to read an untrusted file is "corrupt"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputFileError(weights_path, f"corrupt (truncated?) safetensors file: "
                                           f"{first[:200]}") from None
    ckpt = {k: v for k, v in meta.items() if k not in TENSOR_PARTS}
    ckpt["state_dict"] = {}
    for name, tensor in tensors.items():
        part = "ema_state_dict" if name.startswith(EMA_PREFIX) else "state_dict"
        ckpt.setdefault(part, {})[name[len(TENSOR_PARTS[part]):]] = tensor
    _check_parts(meta_path, ckpt, weights_path)
    check_weights(ckpt, meta_path, weights_path)
    ckpt["_path"] = str(path)
    return ckpt


def check_weights(ckpt: dict, config_file, weights_file) -> None:
    """Every tensor of ``ckpt`` has the name and shape the model of its config has (and
    none is missing); reorder them as the model's ``state_dict`` orders them. A mismatch is
    one :class:`InputFileError` naming ``weights_file`` and the first mismatching tensor."""
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            model, _, _ = _build(ckpt, config_file)
    except InputFileError:
        raise
    except Exception:  # noqa: BLE001 - a backbone that cannot be built on "meta": build it
        model, _, _ = _build(ckpt, config_file)
    expected = model.state_dict()
    for part, prefix in TENSOR_PARTS.items():
        state = ckpt.get(part)
        if state is None:
            continue
        for key, want in expected.items():
            if key not in state:
                raise InputFileError(weights_file, f"has no tensor {prefix + key!r} that the "
                                                   f"model {config_file} describes needs")
            if tuple(state[key].shape) != tuple(want.shape):
                raise InputFileError(weights_file, f"tensor {prefix + key!r} has shape "
                                                   f"{list(state[key].shape)}, the model "
                                                   f"{config_file} describes "
                                                   f"{list(want.shape)}")
            got = state[key].dtype
            if (got.is_floating_point, got == torch.bool, got.is_complex) != \
                    (want.dtype.is_floating_point, want.dtype == torch.bool,
                     want.dtype.is_complex):
                raise InputFileError(weights_file, f"tensor {prefix + key!r} holds "
                                                   f"{str(got).replace('torch.', '')} values, "
                                                   f"the model {config_file} describes "
                                                   f"{str(want.dtype).replace('torch.', '')}")
        extra = [k for k in state if k not in expected]
        if extra:
            raise InputFileError(weights_file, f"has a tensor {prefix + extra[0]!r} that the "
                                               f"model {config_file} describes does not have")
        ckpt[part] = {k: state[k] for k in expected}


def _scalar(value) -> bool:
    """A metric value: text, a flag, nothing or a number (an export writes NaN as nothing)."""
    return value is None or isinstance(value, (str, bool, int, float))


def _record_problem(ckpt: dict) -> str | None:
    """Why the step, metrics or data record of a checkpoint is unusable, or ``None``."""
    step = ckpt.get("step")
    if not (isinstance(step, int) and not isinstance(step, bool) and step >= 0):
        shown = f"a {type(step).__name__}" if not isinstance(step, (int, float)) else step
        return (f"'step' is {'missing' if step is None else shown}, not a non-negative whole "
                "number")
    metrics = ckpt.get("metrics", {})
    if not isinstance(metrics, dict):
        return f"'metrics' is a {type(metrics).__name__}, not a mapping of names to values"
    for k, v in metrics.items():
        if not isinstance(k, str) or not (_scalar(v) or (isinstance(v, list) and all(
                _scalar(x) for x in v))):
            return (f"metric {str(k)[:40]!r} is a {type(v).__name__}: metrics are numbers, "
                    "text or lists of them")
    data = ckpt.get("data")
    if data is not None and not (isinstance(data, dict) and all(
            isinstance(k, str) for k in data) and isinstance(data.get("source"), (str, type(None)))
            and isinstance(data.get("index_sha256"), (str, type(None)))):
        return "'data' (where the training data came from) is not a mapping with a 'source'"
    return None


def _check_parts(path: Path, ckpt: dict, weights_file=None) -> None:
    """The parts every reader relies on: a config, a tokenizer (rebuilt here from its dict: the
    object replaces it in ``ckpt``), a step, metrics and finite weights (errors about the
    weights name ``weights_file`` when they come from one)."""
    for key, kind in (("config", dict), ("tokenizer", dict), ("state_dict", dict)):
        if not isinstance(ckpt.get(key), kind):
            raise InputFileError(path, f"checkpoint has no {key!r} ({kind.__name__}): "
                                       "incomplete or not written by dnadiff")
    for key in ("config", "tokenizer", "metrics", "data"):
        if isinstance(ckpt.get(key), (dict, list)) and json_depth(ckpt[key], MAX_DEPTH):
            raise InputFileError(path, f"checkpoint {key!r} nests containers deeper than "
                                       f"{MAX_DEPTH} levels: not written by dnadiff")
    problem = _record_problem(ckpt)
    if problem:
        raise InputFileError(path, f"checkpoint {problem}: damaged or not written by dnadiff")
    tok = ckpt["tokenizer"]
    problem = tokenizer_problem(tok)
    if problem:
        raise InputFileError(path, f"checkpoint {problem}")
    try:
        ckpt["tokenizer"] = tokenizer_from_dict(tok)
    except Exception as exc:  # noqa: BLE001 - any broken entry is the file's problem
        raise InputFileError(path, f"checkpoint tokenizer cannot be rebuilt "
                                   f"({type(exc).__name__}: {str(exc)[:160]})") from None
    for name in ("state_dict", "ema_state_dict"):
        state = ckpt.get(name)
        if state is None:
            continue
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise InputFileError(weights_file or path, f"checkpoint {name!r} is not a mapping "
                                                       "of tensors")
        bad = [k for k, v in state.items() if v.is_floating_point() and
               not torch.isfinite(v).all()]
        if bad:
            raise InputFileError(weights_file or path,
                                 f"checkpoint weights are not finite (NaN or infinity in "
                                 f"{len(bad)} tensor(s), e.g. {bad[0]!r}): the training "
                                 "diverged; train again with a lower train.lr")


def model_from_checkpoint(ckpt: dict, use_ema: bool = True, rc_conjoin: bool | None = None):
    """Rebuild (backbone in eval mode, objective, tokenizer) from a loaded checkpoint.

    The EMA weights are used when the checkpoint has them (unless ``use_ema`` is False).
    ``rc_conjoin`` overrides the trained ``model.rc_conjoin`` (None keeps it; it never applies
    to caduceus, equivariant already, or to an AR checkpoint, which must stay causal). A checkpoint
    trained with ``scan_impl: cuda`` loads with ``auto`` where the mamba-ssm kernels are missing.
    """
    where = ckpt.get("_path", "checkpoint")
    model, objective, tok = _build(ckpt, where, rc_conjoin)
    state = ckpt.get("ema_state_dict") if use_ema else None
    try:
        model.load_state_dict(state if state is not None else ckpt["state_dict"])
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:240]
        raise InputFileError(where, "the weights do not fit the model its config describes "
                                    f"({detail})") from None
    model.eval()
    return model, objective, tok


def _build(ckpt: dict, where, rc_conjoin: bool | None = None):
    """(backbone with fresh weights, objective, tokenizer) of a checkpoint's config."""
    try:
        cfg = validate_config(ckpt["config"], f"{where}: its config")  # fills keys added since
    except DnadiffError as exc:
        raise InputFileError(where, f"the checkpoint's config is not valid ({exc})") from None
    tok = ckpt["tokenizer"]
    model_cfg = dict(cfg["model"])
    if rc_conjoin is not None and not BACKBONES[model_cfg["backbone"]].rc_equivariant:
        model_cfg["rc_conjoin"] = rc_conjoin
    if model_cfg["scan_impl"] == "cuda" and not mamba_ssm_status()[0]:
        log.info("checkpoint was trained with scan_impl cuda; the mamba-ssm kernels are not "
                 "usable here (%s): using the pure-PyTorch scan", mamba_ssm_status()[1])
        model_cfg["scan_impl"] = "auto"
    objective = build_objective(cfg, tok)
    model = build_backbone(model_cfg, tok.vocab_size, causal=objective.causal,
                           complement=tok.complement)
    return model, objective, tok


# -- classifier checkpoints ---------------------------------------------------------------------
def save_classifier(path, model: SequenceClassifier, ckpt: dict, task, record: dict) -> None:
    """Write a fine-tuned classifier with the config and tokenizer of its pretrained checkpoint
    ``ckpt`` and the ``task``'s classes, length and name (``record``: its training record)."""
    cfg = copy.deepcopy(ckpt["config"])
    cfg["model"]["rc_conjoin"] = False
    cfg["model"]["num_classes"] = None
    payload = {"format": CLASSIFIER_FORMAT, "version": 1, "config": cfg,
               "tokenizer": ckpt["tokenizer"].to_dict(), "classes": list(task.classes),
               "length": task.length, "task": task.name, "record": record,
               "dropout": model.dropout,
               "rc_conjoin": model.backbone.rc_conjoin is not None,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_classifier(path) -> tuple[SequenceClassifier, dict]:
    """A saved classifier (eval mode) and its metadata (classes, length, task, record, the
    tokenizer object)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "classifier checkpoint not found")
    c = _read_torch_file(path, "classifier checkpoint")
    if not isinstance(c, dict) or c.get("format") != CLASSIFIER_FORMAT:
        raise InputFileError(path, "not a dnadiff classifier checkpoint")
    cfg = validate_config(c["config"], f"{path} config")
    try:
        tok = tokenizer_from_dict(c["tokenizer"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(path, f"malformed classifier checkpoint ({exc})"[:300]) from None
    backbone = build_backbone(cfg["model"], tok.vocab_size, complement=tok.complement)
    try:
        model = SequenceClassifier(backbone, len(c["classes"]), c["dropout"])
        model.load_state_dict(c["state_dict"])
        if c.get("rc_conjoin"):  # scored as it was selected: strand-averaged features
            model.backbone.set_rc_conjoin(tok.complement, tok.vocab_size)
        meta = {**{k: c[k] for k in ("classes", "length", "task", "record")}, "tokenizer": tok}
    except (KeyError, RuntimeError, TypeError) as exc:
        raise InputFileError(path, f"malformed classifier checkpoint ({exc})"[:300]) from None
    return model.eval(), meta
