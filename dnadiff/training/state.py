"""The training state in ``--workdir``: resumable checkpoints of an unfinished run, owned by
dnadiff (a marker file), read with ``weights_only=True``, set aside when unreadable, and the
fingerprint that decides whether a run may resume from them."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn

from dnadiff.errors import DnadiffError, OutputError, write_failure
from dnadiff.io import atomic_open

log = logging.getLogger(__name__)


class SaveState(L.Callback):
    """Save the training state when a validation of the fit ends (after the best-weights
    bookkeeping), to ``path`` through a temporary name, so a kill never leaves a partial file
    that looks like a checkpoint."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_validation_end(self, trainer, module):
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            trainer.save_checkpoint(tmp)  # collective; rank 0 writes
            if trainer.is_global_zero:
                os.replace(tmp, self.path)
        except (OSError, RuntimeError) as exc:
            tmp.unlink(missing_ok=True)
            reason = write_failure(exc)
            if reason is None:
                raise
            raise OutputError(self.path, f"the training state cannot be saved ({reason})"
                              ) from None


def launch_rank(devices_per_node: int = 1) -> int:
    """This process's global rank as set by the launcher (torchrun: RANK; srun: SLURM_PROCID
    of a multi-task step; Lightning's own launcher: NODE_RANK and LOCAL_RANK); 0 when not
    distributed."""
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"])
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return int(env["SLURM_PROCID"])
    return int(env.get("NODE_RANK", "0")) * devices_per_node + int(env.get("LOCAL_RANK", "0"))


def fingerprint(cfg: dict, train_ds, data_id: str) -> str:
    """What must match for a training state to be resumed: the config (minus keys that do not
    change the trajectory) and the identity of the data and initial weights."""
    keep = copy.deepcopy(cfg)
    for key in ("log_every", "num_workers", "checkpoint_state", "compile", "resume"):
        keep["train"].pop(key, None)
    return json.dumps({"config": keep, "items": len(train_ds), "data": data_id},
                      sort_keys=True, default=str)


#: marks a folder as dnadiff's training state: only such a folder (or an empty or new one) is
#: used as --workdir, and only the entries below are ever removed from it
STATE_MARKER = ".dnadiff-train-state"
_STATE_ENTRIES = ("checkpoints", "run.json", "launch.json", "hpc_ckpt_*.ckpt", "attempt_*",
                  "*.corrupt")


def _owned_workdir(workdir: Path) -> bool:
    """Whether ``workdir`` may hold our training state: new, empty, marked as ours, or the
    state of an earlier dnadiff version (its run.json holds a training fingerprint)."""
    if not workdir.exists():
        return True
    if not workdir.is_dir():
        raise DnadiffError(f"{workdir}: --workdir is a file; expected a folder for the "
                           "training state")
    if (workdir / STATE_MARKER).exists() or not any(workdir.iterdir()):
        return True
    try:
        return "config" in json.loads((workdir / "run.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _reset_workdir(workdir: Path) -> None:
    """Remove our own entries from the training-state folder (nothing else) and mark it."""
    if not _owned_workdir(workdir):
        raise DnadiffError(f"{workdir}: --workdir holds files that dnadiff did not create; give "
                           "a new or empty folder for the training state (dnadiff never "
                           "deletes what it did not create)")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        for pattern in _STATE_ENTRIES:
            for entry in workdir.glob(pattern):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        (workdir / STATE_MARKER).write_text("dnadiff training state: resumable checkpoints of "
                                            "an unfinished run (safe to delete)\n")
    except OSError as exc:
        raise OutputError(workdir, f"the training state folder cannot be written "
                                   f"({write_failure(exc)})") from None


def candidates(workdir: Path) -> list[Path]:
    """Training checkpoints in ``workdir``, newest first: the one saved after the last
    validation (checkpoints/last.ckpt) and any Lightning wrote on a SLURM signal."""
    found = list(workdir.glob("hpc_ckpt_*.ckpt")) + list((workdir / "checkpoints").glob("*.ckpt"))
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def load_training_state(path: Path) -> dict:
    """A Lightning training state, read with ``weights_only=True`` (tensors and plain
    containers only: a planted pickle cannot run code); raises on a corrupt or unsafe file."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "global_step" not in state or "state_dict" not in state:
        raise ValueError("not a Lightning training state")
    return state


def _readable_state(workdir: Path) -> tuple[Path | None, int]:
    """The newest training checkpoint that reads safely, and its step; unreadable ones
    (truncated, empty, not a training state, or holding code) are set aside with a warning."""
    for path in candidates(workdir):
        try:
            step = int(load_training_state(path)["global_step"])
        except Exception as exc:  # noqa: BLE001 - anything unreadable is set aside, not run
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            aside = workdir / f"{path.name}.corrupt"
            log.warning("%s: unreadable or unsafe training state (%s); set aside as %s, not "
                        "resumed", path, reason, aside)
            with contextlib.suppress(OSError):
                os.replace(path, aside)
            continue
        return path, step
    return None, 0


def _launch_id() -> str:
    """Identifies one start of a distributed job, so that ranks started together (srun,
    torchrun) agree on rank 0's decision about resuming."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env:
        return "torchrun:" + env["TORCHELASTIC_RUN_ID"]
    if "SLURM_JOB_ID" in env:
        return "slurm:" + ".".join(env.get(k, "") for k in ("SLURM_JOB_ID", "SLURM_STEP_ID",
                                                            "SLURM_RESTART_COUNT"))
    return "local"  # Lightning's own launcher starts the other ranks after rank 0 decided


def prepare_workdir(workdir: Path, fingerprint: str, resume: bool, devices: int
                     ) -> tuple[Path | None, int]:
    """Rank 0 keeps a matching workdir (resuming from its newest readable checkpoint) or
    starts it afresh, and records its decision in launch.json; the other ranks follow that
    decision. Returns (checkpoint to resume from or None, its step)."""
    stamp, launch = workdir / "run.json", workdir / "launch.json"
    if launch_rank(devices) != 0:
        deadline = time.time() + 600
        while True:
            try:
                decision = json.loads(launch.read_text())
                if decision["id"] == _launch_id() and stamp.read_text() == fingerprint:
                    path = decision["resume_from"]
                    return (Path(path), int(decision["step"])) if path else (None, 0)
            except (OSError, ValueError, KeyError):
                pass
            if time.time() > deadline:
                raise DnadiffError(f"{workdir}: rank 0 did not prepare the training state")
            time.sleep(0.5)
    ckpt, step = None, 0
    if not _owned_workdir(workdir):
        raise DnadiffError(f"{workdir}: --workdir holds files that dnadiff did not create; give "
                           "a new or empty folder for the training state (dnadiff never "
                           "deletes what it did not create)")
    if resume and stamp.exists() and stamp.read_text() == fingerprint:
        ckpt, step = _readable_state(workdir)
    if ckpt is None:
        _reset_workdir(workdir)
        stamp.write_text(fingerprint)
    with atomic_open(launch, now=True) as fh:
        json.dump({"id": _launch_id(), "resume_from": str(ckpt) if ckpt else None,
                   "step": step}, fh)
    return ckpt, step


def clear_state(workdir: Path) -> None:
    """After a finished run: its training checkpoints are no longer needed (a later run
    starts afresh rather than resuming a finished one); the attempt logs stay."""
    shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    for pattern in ("hpc_ckpt_*.ckpt", "*.corrupt", "attempt_*/checkpoints"):
        for p in workdir.glob(pattern):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    (workdir / "run.json").unlink(missing_ok=True)


def discard_state(workdir: Path, remove_folder: bool) -> None:
    """A run that failed before saving anything resumable leaves no training-state folder
    behind (only our own entries are removed; the folder only if this run made it)."""
    for pattern in _STATE_ENTRIES + (STATE_MARKER,):
        for entry in workdir.glob(pattern):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    if remove_folder:
        with contextlib.suppress(OSError):
            workdir.rmdir()
