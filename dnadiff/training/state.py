"""The training state in ``--workdir``: resumable checkpoints of an unfinished run, owned by
dnadiff (a marker file), read with ``weights_only=True``, set aside when unreadable, and the
fingerprint that decides whether a run may resume from them."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import shlex
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
#: used as --workdir, and only the entries :func:`our_entries` names are ever removed from it
STATE_MARKER = ".dnadiff-train-state"
_ATTEMPT = re.compile(r"attempt_\d+")
_HPC = re.compile(r"hpc_ckpt_\d+\.ckpt")


def attempts(workdir: Path) -> list[Path]:
    """The attempt folders (``attempt_N``, the CSV logger's) of a training-state folder, in
    the order of N."""
    found = [p for p in workdir.glob("attempt_*") if _ATTEMPT.fullmatch(p.name) and p.is_dir()
             and not p.is_symlink()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def our_entries(workdir: Path, keep_logs: bool = False) -> list[Path]:
    """What dnadiff itself writes in a training-state folder, by exact name: run.json,
    launch.json, checkpoints/last.ckpt, hpc_ckpt_N.ckpt, attempt_N/ (only the checkpoints
    inside with ``keep_logs``). A file set aside as ``*.corrupt`` is kept for the user to look
    at, and anything else is not ours."""
    found = [workdir / n for n in ("run.json", "launch.json") if (workdir / n).is_file()]
    found += [p for p in workdir.glob("hpc_ckpt_*.ckpt") if _HPC.fullmatch(p.name)]
    ckpts = workdir / "checkpoints"
    if ckpts.is_dir() and not ckpts.is_symlink():
        found += [p for p in ckpts.iterdir() if p.name == "last.ckpt"
                  or p.name.startswith(".last.ckpt.tmp-")]
    for attempt in attempts(workdir):
        found += [attempt / "checkpoints"] if keep_logs else [attempt]
    return [p for p in found if p.exists() or p.is_symlink()]


def _remove_entries(entries) -> None:
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def _owned_workdir(workdir: Path) -> bool:
    """Whether ``workdir`` may hold our training state: new, empty or marked as ours (by the
    marker only, never by the shape of its contents)."""
    if not workdir.exists():
        return True
    if not workdir.is_dir():
        raise DnadiffError(f"{workdir}: --workdir is a file; expected a folder for the "
                           "training state")
    return (workdir / STATE_MARKER).exists() or not any(workdir.iterdir())


def _refuse_workdir(workdir: Path) -> DnadiffError:
    if (workdir / "run.json").is_file():
        return DnadiffError(f"{workdir}: --workdir has no {STATE_MARKER} marker (a training "
                            "state of an earlier dnadiff version, or not dnadiff's); dnadiff "
                            "never deletes what it did not create: move it aside (mv "
                            f"{shlex.quote(str(workdir))} {shlex.quote(str(workdir) + '.old')}) "
                            "or give a new folder")
    return DnadiffError(f"{workdir}: --workdir holds files that dnadiff did not create; give "
                        "a new or empty folder for the training state (dnadiff never "
                        "deletes what it did not create)")


def _drop_empty_checkpoints(workdir: Path) -> None:
    """Remove the ``checkpoints`` folder of ``workdir`` if it is empty (a folder, not a link)."""
    ckpts = workdir / "checkpoints"
    if ckpts.is_dir() and not ckpts.is_symlink() and not any(ckpts.iterdir()):
        ckpts.rmdir()


def _reset_workdir(workdir: Path) -> None:
    """Remove our own entries from the training-state folder (nothing else) and mark it."""
    if not _owned_workdir(workdir):
        raise _refuse_workdir(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        _remove_entries(our_entries(workdir))
        _drop_empty_checkpoints(workdir)
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
            n = 1
            while aside.exists():  # never over an earlier one: each is kept for the user
                n += 1
                aside = workdir / f"{path.name}.{n}.corrupt"
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
        raise _refuse_workdir(workdir)
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
    starts afresh rather than resuming a finished one); the attempt logs stay, and so do
    states set aside as ``*.corrupt``."""
    with contextlib.suppress(OSError):
        _remove_entries(p for p in our_entries(workdir, keep_logs=True)
                        if p.name != "launch.json")
    with contextlib.suppress(OSError):
        _drop_empty_checkpoints(workdir)


def discard_state(workdir: Path, remove_folder: bool) -> None:
    """A run that failed before saving anything resumable leaves no training-state folder
    behind (only our own entries are removed; the folder only if this run made it)."""
    with contextlib.suppress(OSError):
        _remove_entries(our_entries(workdir))
        _drop_empty_checkpoints(workdir)
        if not any(p.name != STATE_MARKER for p in workdir.iterdir()):
            (workdir / STATE_MARKER).unlink(missing_ok=True)
    if remove_folder:
        with contextlib.suppress(OSError):
            workdir.rmdir()
