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
import json
import logging
from pathlib import Path

import torch

from dnadiff.config import validate_config
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


def _cpu_state(state: dict) -> dict:
    return {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
            for k, v in state.items()}


def save_checkpoint(path, model, config: dict, tokenizer: dict, step: int,
                    metrics: dict | None = None, ema_state: dict | None = None) -> None:
    """Write weights (+ EMA weights when given), the full config and the tokenizer."""
    payload = {"format": FORMAT, "version": VERSION, "config": config, "tokenizer": tokenizer,
               "step": int(step), "metrics": metrics or {},
               "state_dict": _cpu_state(model.state_dict())}
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
    :class:`InputFileError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "checkpoint not found")
    if path.is_dir():
        return _load_folder(path)
    problem = sniff_torch_file(path)
    if problem:
        raise InputFileError(path, problem)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read an untrusted file is "corrupt"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(path, "corrupt (truncated?) or unsafe checkpoint: torch.load "
                                   f"with weights_only=True says {first[:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputFileError(path, "not a dnadiff checkpoint (a PyTorch file without "
                                   f"format={FORMAT!r}; dnadiff train writes them)")
    if ckpt.get("version") != VERSION:
        raise InputFileError(path, f"checkpoint version {ckpt.get('version')} is not supported "
                                   f"(this dnadiff reads version {VERSION})")
    _check_parts(path, ckpt)
    ckpt["_path"] = str(path)  # for error messages of later readers (not saved)
    return ckpt


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
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(meta_path, f"corrupt: not JSON ({str(exc)[:160]})") from None
    except OSError as exc:
        raise InputFileError(meta_path, f"cannot be read ({exc.strerror})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputFileError(meta_path, f"not the config.json of a dnadiff model (no "
                                        f"format={FORMAT!r}; dnadiff export writes them)")
    if meta.get("version") != VERSION:
        raise InputFileError(meta_path, f"model version {meta.get('version')} is not supported "
                                        f"(this dnadiff reads version {VERSION})")
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
    _check_parts(path, ckpt)
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
        extra = [k for k in state if k not in expected]
        if extra:
            raise InputFileError(weights_file, f"has a tensor {prefix + extra[0]!r} that the "
                                               f"model {config_file} describes does not have")
        ckpt[part] = {k: state[k] for k in expected}


def _check_parts(path: Path, ckpt: dict) -> None:
    """The parts every reader relies on: a config, a tokenizer and finite weights."""
    for key, kind in (("config", dict), ("tokenizer", dict), ("state_dict", dict)):
        if not isinstance(ckpt.get(key), kind):
            raise InputFileError(path, f"checkpoint has no {key!r} ({kind.__name__}): "
                                       "incomplete or not written by dnadiff")
    tok = ckpt["tokenizer"]
    tokens = tok.get("tokens")
    if not (isinstance(tokens, list) and tokens and all(isinstance(t, str) for t in tokens)):
        raise InputFileError(path, "checkpoint tokenizer has no list of tokens")
    n = len(tokens)
    for key in ("mask_id", "pad_id"):
        if not (isinstance(tok.get(key), int) and 0 <= tok[key] < n):
            raise InputFileError(path, f"checkpoint tokenizer: {key!r} is "
                                       f"{tok.get(key)!r}, not a token id below {n}")
    gen = tok.get("generable_ids")
    if not (isinstance(gen, list) and gen and all(isinstance(i, int) and 0 <= i < n
                                                  for i in gen)):
        raise InputFileError(path, "checkpoint tokenizer: 'generable_ids' must be a non-empty "
                                   f"list of token ids below {n}")
    comp = tok.get("complement")
    if comp is not None and not (isinstance(comp, list) and len(comp) == n and all(
            isinstance(i, int) and 0 <= i < n for i in comp)):
        raise InputFileError(path, f"checkpoint tokenizer: 'complement' must map each of the "
                                   f"{n} tokens to a token id")
    try:
        tokenizer_from_dict(tok)
    except Exception as exc:  # noqa: BLE001 - any broken entry is the file's problem
        raise InputFileError(path, f"checkpoint tokenizer cannot be rebuilt "
                                   f"({type(exc).__name__}: {str(exc)[:160]})") from None
    for name in ("state_dict", "ema_state_dict"):
        state = ckpt.get(name)
        if state is None:
            continue
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise InputFileError(path, f"checkpoint {name!r} is not a mapping of tensors")
        bad = [k for k, v in state.items() if v.is_floating_point() and
               not torch.isfinite(v).all()]
        if bad:
            raise InputFileError(path, f"checkpoint weights are not finite (NaN or infinity in "
                                       f"{len(bad)} tensor(s), e.g. {bad[0]!r}): the training "
                                       "diverged; train again with a lower train.lr")


def model_from_checkpoint(ckpt: dict, use_ema: bool = True, rc_conjoin: bool | None = None):
    """Rebuild (backbone in eval mode, objective, tokenizer dict) from a loaded checkpoint.

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
    """(backbone with fresh weights, objective, tokenizer dict) of a checkpoint's config."""
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
    model = build_backbone(model_cfg, len(tok["tokens"]),
                           causal=objective.causal, complement=tok.get("complement"))
    return model, objective, tok


# -- classifier checkpoints ---------------------------------------------------------------------
def save_classifier(path, model: SequenceClassifier, ckpt: dict, task, record: dict) -> None:
    """Write a fine-tuned classifier with the config and tokenizer of its pretrained checkpoint
    ``ckpt`` and the ``task``'s classes, length and name (``record``: its training record)."""
    cfg = copy.deepcopy(ckpt["config"])
    cfg["model"]["rc_conjoin"] = False
    cfg["model"]["num_classes"] = None
    payload = {"format": CLASSIFIER_FORMAT, "version": 1, "config": cfg,
               "tokenizer": ckpt["tokenizer"], "classes": list(task.classes),
               "length": task.length, "task": task.name, "record": record,
               "dropout": model.dropout,
               "rc_conjoin": model.backbone.rc_conjoin is not None,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_classifier(path) -> tuple[SequenceClassifier, dict]:
    """A saved classifier (eval mode) and its metadata (classes, length, task, record)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "classifier checkpoint not found")
    try:
        c = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read an untrusted file
        raise InputFileError(path, f"corrupt or unsafe classifier checkpoint ({exc})"[:300]
                             ) from None
    if not isinstance(c, dict) or c.get("format") != CLASSIFIER_FORMAT:
        raise InputFileError(path, "not a dnadiff classifier checkpoint")
    cfg = validate_config(c["config"], f"{path} config")
    tok = c["tokenizer"]
    backbone = build_backbone(cfg["model"], len(tok["tokens"]),
                              complement=tok.get("complement"))
    try:
        model = SequenceClassifier(backbone, len(c["classes"]), c["dropout"])
        model.load_state_dict(c["state_dict"])
        if c.get("rc_conjoin"):  # scored as it was selected: strand-averaged features
            model.backbone.set_rc_conjoin(tok["complement"], len(tok["tokens"]))
        meta = {k: c[k] for k in ("classes", "length", "task", "record", "tokenizer")}
    except (KeyError, RuntimeError, TypeError) as exc:
        raise InputFileError(path, f"malformed classifier checkpoint ({exc})"[:300]) from None
    return model.eval(), meta
