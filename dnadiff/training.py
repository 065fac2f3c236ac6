"""``dnadiff train``: MDLM training with Lightning (CPU here, GPU with bf16-mixed when present).

Writes the final checkpoint (see ``dnadiff.checkpoint``) and ``metrics.csv`` (one row per logged
step: train loss, learning rate, validation bits per token). Interactive runs show a progress bar;
batch runs log one line every ``train.log_every`` steps.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.plugins.environments import SLURMEnvironment
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dnadiff.checkpoint import save_checkpoint
from dnadiff.data.windows import PreparedGenome, RandomWindows, TiledWindows
from dnadiff.diffusion import build_objective
from dnadiff import io
from dnadiff.errors import DnadiffError, OutputError, write_failure
from dnadiff.io import atomic_open
from dnadiff.models import build_backbone

log = logging.getLogger(__name__)
LN2 = math.log(2.0)
# Lightning-internal deprecation noise and a hint that does not apply to map-style windows
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


class EMA:
    """Exponential moving average of a model's floating-point weights (kept in float32).

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so short runs get a
    short averaging window instead of weights dominated by the initialization.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()
                       if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        state = model.state_dict()
        for k, s in self.shadow.items():
            if s.device != state[k].device:  # the model moved (e.g. to the GPU)
                self.shadow[k] = s.to(state[k].device)
        # shadow <- d shadow + (1 - d) w as one multi-tensor lerp: one pass over the weights
        # and a few kernel launches per step instead of two per tensor
        torch._foreach_lerp_(list(self.shadow.values()),
                             [state[k].detach().float() for k in self.shadow], 1.0 - d)

    def state_dict(self, model: torch.nn.Module) -> dict:
        """A full state dict for ``model`` with the averaged weights."""
        return {k: self.shadow.get(k, v) for k, v in model.state_dict().items()}

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module):
        """Temporarily load the averaged weights into ``model``."""
        saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state_dict(model))
        try:
            yield
        finally:
            model.load_state_dict(saved)


class DenoiserModule(L.LightningModule):
    """Any backbone under any objective (MDLM or AR); validation and checkpoints use the EMA."""

    def __init__(self, cfg: dict, tokenizer: dict):
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.objective = build_objective(cfg, tokenizer)
        self.model = build_backbone(cfg["model"], len(tokenizer["tokens"]),
                                    cfg["data"]["window"], causal=self.objective.causal,
                                    complement=tokenizer.get("complement"))
        self.ema = None
        self._val = [0.0, 0]
        self._ema_ctx = None
        self.best = None  # (bits, step, weights) of the best validation (train.keep: best)
        self._restored_ema = None
        # the network the steps run (torch.compile'd when train.compile); self.model keeps the
        # plain module, whose state dict is what gets saved
        # (not registered as a submodule: checkpoints hold self.model's weights once, with the
        # same keys whether or not the steps are compiled)
        object.__setattr__(self, "net", torch.compile(self.model) if cfg["train"]["compile"]
                           else self.model)
        self._acc = None
        self._restored_rng = None
        self._first_bad = None  # (step, loss) of the first non-finite loss, kept on the device

    def on_fit_start(self):
        if self.cfg["train"]["ema_decay"] > 0 and self.ema is None:
            self.ema = EMA(self.model, self.cfg["train"]["ema_decay"])
        if self.ema is not None and self._restored_ema is not None:
            self.ema.shadow = {k: v.to(self.device) for k, v in
                               self._restored_ema["shadow"].items()}
            self.ema.updates = self._restored_ema["updates"]
            self._restored_ema = None

    def on_train_start(self):
        # the objective's noise (times, masks) differs between ranks but is reproducible
        torch.manual_seed(self.cfg["train"]["seed"] * 1009 + 7919 * self.global_rank
                          + self.global_step)

    def on_train_batch_start(self, batch, batch_idx):
        # a resumed run continues the random stream where the saved one stopped (restored at
        # the first batch: creating the data iterators draws from the stream before it)
        if self._restored_rng is not None:
            torch.set_rng_state(self._restored_rng["cpu"])
            if self._restored_rng.get("cuda") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state(self._restored_rng["cuda"], self.device)
            self._restored_rng = None

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.global_step % self.cfg["train"]["log_every"] == 0:
            self.check_finite()

    def check_finite(self) -> None:
        """Stop with a clear error once the loss has become NaN or infinite (checked every
        ``log_every`` steps and at each validation, so the GPU is not synchronized every step)."""
        if self._first_bad is not None and float(self._first_bad[0]) >= 0:
            step, loss = int(self._first_bad[0]), float(self._first_bad[1])
            raise DnadiffError(
                f"training diverged: the loss became {loss} at step {step}; no model was "
                f"written. Lower train.lr (now {self.cfg['train']['lr']}), keep "
                "train.grad_clip on, or train in precision 32-true")

    def on_save_checkpoint(self, checkpoint):
        checkpoint["dnadiff_rng"] = {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda"
            else None}
        if self.ema is not None:
            checkpoint["dnadiff_ema"] = {"shadow": {k: v.detach().cpu() for k, v in
                                                    self.ema.shadow.items()},
                                         "updates": self.ema.updates}
        if self.best is not None:
            checkpoint["dnadiff_best"] = self.best

    def on_load_checkpoint(self, checkpoint):
        self._restored_ema = checkpoint.get("dnadiff_ema")
        self.best = checkpoint.get("dnadiff_best")
        self._restored_rng = checkpoint.get("dnadiff_rng")

    def training_step(self, batch, batch_idx):
        loss = self.objective.loss(self.net, batch["tokens"], batch["loss_mask"],
                                   cond=self._labels(batch, drop=True))
        # remember the first non-finite loss without synchronizing with the GPU
        if self._first_bad is None:
            self._first_bad = torch.tensor([-1.0, 0.0], dtype=torch.float64,
                                           device=loss.device)
        bad = ~torch.isfinite(loss.detach()) & (self._first_bad[0] < 0)
        self._first_bad = torch.where(
            bad, torch.stack([torch.full_like(self._first_bad[0], self.global_step + 1),
                              loss.detach().double()]), self._first_bad)
        # logged once per optimizer step: the mean over its micro-batches and over ranks,
        # the loss of the global batch
        first = batch_idx % self.trainer.accumulate_grad_batches == 0 or self._acc is None
        self._acc = loss.detach() if first else self._acc + loss.detach()
        if (batch_idx + 1) % self.trainer.accumulate_grad_batches == 0:
            self.log("train/bits_per_token", self._acc / self.trainer.accumulate_grad_batches
                     / LN2, prog_bar=True, sync_dist=True)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def _labels(self, batch, drop: bool = False):
        """Class labels of a class-conditional model; in training a fraction ``p_uncond`` is
        replaced by the null label (classifier-free guidance learns p(x) and p(x | y) at once)."""
        if "label" not in batch or not self.cfg["model"]["num_classes"]:
            return None
        y = batch["label"]
        if drop:
            null = self.cfg["model"]["num_classes"]
            keep = torch.rand(y.shape, device=y.device) >= self.cfg["conditional"]["p_uncond"]
            y = torch.where(keep, y, torch.full_like(y, null))
        return y

    def optimizer_step(self, *args, **kwargs):
        # once per optimizer step (not per accumulated micro-batch), and before the
        # checkpoint callbacks run, so a saved training state holds this step's average
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update(self.model)

    def on_validation_epoch_start(self):
        self.check_finite()
        self._val = [0.0, 0]
        if self.ema is not None:
            self._ema_ctx = self.ema.applied(self.model)
            self._ema_ctx.__enter__()

    def validation_step(self, batch, batch_idx):
        gen = torch.Generator().manual_seed(self.cfg["train"]["seed"] * 7919 + batch_idx)
        nll, n, _ = self.objective.token_nll(self.model, batch["tokens"], batch["loss_mask"],
                                             generator=gen, cond=self._labels(batch))
        self._val[0] += float(nll.sum())
        self._val[1] += int(n.sum())

    def on_validation_epoch_end(self):
        # every rank scored every validation window (the same sums): the ratio is the same
        # on each, and reducing keeps the ranks in step
        total = self.trainer.strategy.reduce(
            torch.tensor(self._val, dtype=torch.float64, device=self.device), reduce_op="sum")
        bits = float(total[0]) / max(float(total[1]), 1.0) / LN2
        if self.cfg["train"]["keep"] == "best" and (self.best is None or bits < self.best[0]):
            # the weights just validated (the EMA ones when there is an EMA)
            self.best = (bits, int(self.global_step),
                         {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()})
        if self._ema_ctx is not None:
            self._ema_ctx.__exit__(None, None, None)
            self._ema_ctx = None
        self.log("val/bits_per_token", bits, prog_bar=True)

    def configure_optimizers(self):
        # a gradient scaler (fp16) would need the gradients unscaled before clipping, which a
        # fused AdamW does inside its step: not fused then
        scaled = self.trainer.precision in ("16-mixed", "16")
        opt, sched = make_optimizer(self.model, self.cfg["train"], fused=False if scaled else None)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None):
        # Lightning refuses to clip for a fused optimizer under mixed precision (in case it
        # unscales fp16 gradients inside its step); with bf16 or fp32 there is no scaler and the
        # gradients are the real ones here, so clip them by their global norm directly
        if gradient_clip_val:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), gradient_clip_val,
                                           foreach=True)


def make_optimizer(model: torch.nn.Module, tc: dict, fused: bool | None = None):
    """AdamW with linear warmup, then cosine decay to 10% of the peak learning rate; the
    ``train`` section gives lr, weight decay and steps. ``fused`` (default: when every weight
    is on a GPU) picks the fused AdamW kernel."""
    params = list(model.parameters())
    if fused is None:
        fused = bool(params) and all(p.is_cuda for p in params)
    opt = torch.optim.AdamW(params, lr=tc["lr"], betas=(0.9, 0.98),
                            weight_decay=tc["weight_decay"], fused=fused or None)
    total, warm = tc["steps"], tc["warmup_steps"]

    def factor(step):  # linear warmup, then cosine decay to 10% of the peak
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


class LineProgress(L.Callback):
    """Plain log lines (no progress-bar control characters) for non-interactive runs."""

    def __init__(self, every: int, total: int):
        self.every, self.total, self.t0 = every, total, None

    def on_train_start(self, trainer, module):
        self.t0, self.start = time.time(), trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if (step % self.every and step != self.total) or not trainer.is_global_zero:
            return
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # a micro-batch inside an optimizer step
        elapsed = time.time() - self.t0
        done = max(step - self.start, 1)
        eta = elapsed / done * (self.total - step)
        loss = float(trainer.callback_metrics.get("train/bits_per_token", float("nan")))
        val = trainer.callback_metrics.get("val/bits_per_token")
        val_s = f" val {float(val):.4f}" if val is not None else ""
        print(f"step {step}/{self.total} train {loss:.4f} bits/token{val_s} "
              f"{elapsed / done:.2f} s/step ETA {eta / 60:.1f} min",
              file=sys.stderr, flush=True)


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


def resolve_precision(train_cfg: dict) -> tuple[str, str]:
    accel = train_cfg["accelerator"]
    if accel == "auto":
        accel = "gpu" if torch.cuda.is_available() else "cpu"
    prec = train_cfg["precision"]
    if prec == "auto":
        prec = ("bf16-mixed" if accel == "gpu" and torch.cuda.is_bf16_supported()
                else "32-true")
    return accel, prec


def train(cfg: dict, data_dir, checkpoint_out, metrics_out, workdir, progress: bool | None = None
          ) -> dict:
    tc = cfg["train"]
    genome = PreparedGenome(data_dir)
    tokenizer = genome.index["tokenizer"]
    window = cfg["data"]["window"]
    L.seed_everything(tc["seed"], workers=True, verbose=False)
    train_ds = RandomWindows(genome, "train", window, tc["steps"] * tc["batch_size"],
                             seed=tc["seed"], complement=tokenizer.get("complement"),
                             rc_prob=cfg["data"]["rc_augment"])
    val_ds = TiledWindows(genome, "validation", window, max_windows=tc["val_windows"])
    data_id = hashlib.sha256((Path(data_dir) / "index.json").read_bytes()).hexdigest()
    return fit(cfg, tokenizer, train_ds, val_ds, checkpoint_out, metrics_out, workdir, progress,
               data_id=data_id)


class _Shifted(Dataset):
    """``dataset`` read from item ``offset`` on (wrapping around), at its full length.

    Lightning resumes mid-epoch by counting on from the restored batch index through a fresh
    iterator, which ends the epoch after the remaining batches: the shift makes those the
    windows the interrupted run had not read yet.
    """

    def __init__(self, dataset, offset: int):
        self.dataset, self.offset = dataset, offset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[(i + self.offset) % len(self.dataset)]


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


def batch_plan(tc: dict) -> dict:
    """Global batch -> per-device batch and gradient accumulation over devices x nodes."""
    devices = tc["devices"]
    world = devices * tc["num_nodes"]
    if tc["batch_size"] % world:
        raise DnadiffError(f"config key 'train.batch_size' ({tc['batch_size']}) must be a "
                           f"multiple of train.devices x train.num_nodes ({world})")
    per_rank = tc["batch_size"] // world
    micro = tc["micro_batch_size"] or per_rank
    if per_rank % micro:
        raise DnadiffError(f"config key 'train.micro_batch_size' ({micro}) must divide the "
                           f"per-device share of the global batch ({per_rank})")
    return {"world": world, "per_device": micro, "accumulate": per_rank // micro}


def _fingerprint(cfg: dict, train_ds, data_id: str) -> str:
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


def _candidates(workdir: Path) -> list[Path]:
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
    for path in _candidates(workdir):
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


def _prepare_workdir(workdir: Path, fingerprint: str, resume: bool, devices: int
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


def _clear_state(workdir: Path) -> None:
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


def fit(cfg: dict, tokenizer: dict, train_ds, val_ds, checkpoint_out, metrics_out, workdir,
        progress: bool | None = None, init_state: dict | None = None,
        extra_metrics: dict | None = None, data_id: str = "") -> dict:
    """Train ``cfg``'s model on map-style datasets of {"tokens", "loss_mask"[, "label"]}.

    ``train_ds`` holds ``steps * batch_size`` items, read in order (each optimizer step takes
    the next ``batch_size``, split over devices x nodes and accumulation micro-batches).
    ``init_state`` starts from given weights (missing keys, such as a new class table, keep
    their initialization). The training state is checkpointed in ``workdir`` after every
    validation (and by Lightning on a SLURM signal); a run started again with the same config,
    data (``data_id``) and initial weights resumes from the newest checkpoint there and reads
    on from the window where it stopped. Only rank 0 writes the outputs.
    """
    tc = cfg["train"]
    plan = batch_plan(tc)
    workdir = Path(workdir)
    if init_state is not None:
        digest = hashlib.sha256()
        for k in sorted(init_state):
            digest.update(k.encode())
            digest.update(init_state[k].detach().cpu().contiguous().numpy().tobytes())
        data_id += ":init=" + digest.hexdigest()
    if launch_rank(tc["devices"]) == 0:
        io.preflight(checkpoint_out, metrics_out)
    existed = workdir.exists()
    resume_from, start_step = _prepare_workdir(workdir, _fingerprint(cfg, train_ds, data_id),
                                               tc["resume"], tc["devices"])
    try:
        return _fit(cfg, tokenizer, train_ds, val_ds, checkpoint_out, metrics_out, workdir,
                    progress, init_state, extra_metrics, plan, resume_from, start_step)
    except BaseException:
        if launch_rank(tc["devices"]) == 0 and not _candidates(workdir):
            _discard_state(workdir, remove_folder=not existed)
        raise


def _discard_state(workdir: Path, remove_folder: bool) -> None:
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


def _fit(cfg, tokenizer, train_ds, val_ds, checkpoint_out, metrics_out, workdir, progress,
         init_state, extra_metrics, plan, resume_from, start_step) -> dict:
    tc = cfg["train"]
    window = cfg["data"]["window"]
    if resume_from is not None:
        if launch_rank(tc["devices"]) == 0:
            log.info("resuming from %s (step %d of %d)", resume_from, start_step, tc["steps"])
        train_ds = _Shifted(train_ds, start_step * tc["batch_size"])
    L.seed_everything(tc["seed"], workers=True, verbose=False)
    loader_kw = dict(num_workers=tc["num_workers"], persistent_workers=tc["num_workers"] > 0)
    # Each optimizer step reads the next batch_size windows in order, rank r taking every
    # world-th one (our sampler: Lightning's own would shuffle); every rank validates on all
    # validation windows.
    sampler = None
    if plan["world"] > 1:
        sampler = DistributedSampler(train_ds, num_replicas=plan["world"],
                                     rank=launch_rank(tc["devices"]), shuffle=False,
                                     drop_last=True)
    # pinned batches are copied to the GPU asynchronously
    train_dl = DataLoader(train_ds, batch_size=plan["per_device"], shuffle=False,
                          sampler=sampler, drop_last=True,
                          pin_memory=resolve_precision(tc)[0] == "gpu", **loader_kw)
    val_dl = DataLoader(val_ds, batch_size=plan["per_device"], shuffle=False, **loader_kw)

    module = DenoiserModule(cfg, tokenizer)
    if init_state is not None:
        missing, unexpected = module.model.load_state_dict(init_state, strict=False)
        if unexpected or any(not k.startswith("class_embed") for k in missing):
            raise ValueError(f"initial weights do not fit this model (missing {missing}, "
                             f"unexpected {unexpected})")
    accel, precision = resolve_precision(tc)
    if accel == "gpu":  # TF32 tensor cores for whatever autocast leaves in float32
        torch.set_float32_matmul_precision("high")
    if progress is None:
        progress = sys.stderr.isatty()
    callbacks = [] if progress else [LineProgress(tc["log_every"], tc["steps"])]
    if tc["checkpoint_state"]:
        # saved when a validation ends (every train.val_every steps), so a resumed run has
        # that step's validation and best-weights bookkeeping already done
        callbacks.append(SaveState(workdir / "checkpoints" / "last.ckpt"))
    plugins = []
    if SLURMEnvironment.detect():
        # SIGUSR1 (a job step started with srun under sbatch --signal=SIGUSR1@90): Lightning
        # saves hpc_ckpt_N.ckpt in workdir and requeues the job, which then resumes from it.
        # Its save can fall inside an accumulated optimizer step, which cannot be resumed
        # exactly: with accumulation only the validation-time checkpoints are used.
        plugins.append(SLURMEnvironment(auto_requeue=plan["accumulate"] == 1,
                                        requeue_signal=signal.SIGUSR1))
    attempt = sum(1 for _ in workdir.glob("attempt_*"))
    trainer = L.Trainer(
        accelerator=accel, devices=tc["devices"], num_nodes=tc["num_nodes"],
        strategy=tc["strategy"],
        precision=precision, max_steps=tc["steps"],
        accumulate_grad_batches=plan["accumulate"],
        val_check_interval=min(tc["val_every"], tc["steps"]) * plan["accumulate"],
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0, log_every_n_steps=tc["log_every"],
        # no ModelCheckpoint callback (it would keep attempt_N/checkpoints/*.ckpt): SaveState
        # writes the one resumable state
        gradient_clip_val=tc["grad_clip"] or None, enable_checkpointing=False,
        enable_progress_bar=progress, enable_model_summary=False, callbacks=callbacks,
        plugins=plugins or None, use_distributed_sampler=False,
        # rows reach the disk as they are logged, so a killed run keeps them
        logger=L.pytorch.loggers.CSVLogger(workdir, name="", version=f"attempt_{attempt}",
                                           flush_logs_every_n_steps=tc["log_every"]),
        default_root_dir=workdir, deterministic=False)
    n_params = sum(p.numel() for p in module.model.parameters())
    if launch_rank(tc["devices"]) == 0:
        log.info("training %s with the %s objective (%.2fM parameters) for %d steps on %s x %d "
                 "(%d node(s)), precision %s, global batch %d = %d per device x %d "
                 "accumulation", cfg["model"]["backbone"], cfg["objective"], n_params / 1e6,
                 tc["steps"], accel, tc["devices"], tc["num_nodes"], precision,
                 tc["batch_size"], plan["per_device"], plan["accumulate"] * plan["world"])
    t0 = time.time()
    try:
        trainer.fit(module, train_dl, val_dl,
                    ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
    except OSError as exc:
        if exc.filename is not None:
            raise  # names its own file
        raise OutputError(workdir, "the training state or its logs cannot be written "
                                   f"({write_failure(exc)})") from None
    elapsed = time.time() - t0
    module.check_finite()
    if trainer.global_step % tc["val_every"]:
        trainer.validate(module, val_dl, verbose=False)
    final_val = float(trainer.callback_metrics.get("val/bits_per_token", float("nan")))
    trained_tokens = (trainer.global_step - start_step) * tc["batch_size"] * window
    speed = {"tokens_per_second": round(trained_tokens / max(elapsed, 1e-9), 1)}
    if accel == "gpu":
        speed["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    metrics = {"objective": cfg["objective"], "steps": int(trainer.global_step),
               "train_seconds": round(elapsed, 1), **speed,
               "tokens_seen": int(trainer.global_step * tc["batch_size"] * window),
               "parameters": int(n_params), "val_bits_per_token": final_val,
               "accelerator": accel, "precision": precision, "devices": plan["world"],
               "resumed_from_step": start_step, **(extra_metrics or {})}
    if not trainer.is_global_zero:
        return {**metrics, "rank_zero": False}
    ema_state = module.ema.state_dict(module.model) if module.ema is not None else None
    step = trainer.global_step
    if module.best is not None:
        bits, step, weights = module.best
        log.info("keeping the weights of step %d (validation %.4f bits per token; final step %d: "
                 "%.4f)", step, bits, trainer.global_step, final_val)
        metrics.update(val_bits_per_token=bits, kept_step=step)
        module.model.load_state_dict(weights)
        ema_state = None  # the kept weights are already the averaged ones
    weights = ema_state if ema_state is not None else module.model.state_dict()
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad or not math.isfinite(metrics["val_bits_per_token"]):
        raise DnadiffError(f"training diverged: {len(bad)} weight tensor(s) are not finite "
                           f"(e.g. {bad[:1]}) and validation gives "
                           f"{metrics['val_bits_per_token']} bits per token; no model was "
                           f"written. Lower train.lr (now {tc['lr']})")
    with io.all_or_nothing():  # the model and its metrics together, or neither
        save_checkpoint(checkpoint_out, module.model, cfg, tokenizer, step, metrics,
                        ema_state=ema_state)
        _tidy_metrics(sorted(workdir.glob("attempt_*/metrics.csv")), metrics_out)
        io.after_publish(lambda: _clear_state(workdir))
    return metrics


def _tidy_metrics(lightning_csvs: list[Path], out) -> None:
    """Merge Lightning's sparse metric rows into one row per step, over every attempt of a
    resumed run (a later attempt's row for a step replaces an earlier one)."""
    rows: dict[int, dict] = {}
    for lightning_csv in sorted(lightning_csvs, key=lambda p: int(p.parent.name.split("_")[1])):
        if not lightning_csv.exists():
            continue
        with open(lightning_csv) as fh:
            for row in csv.DictReader(fh):
                step = int(row["step"])
                merged = rows.setdefault(step, {"step": step})
                merged.update({k: v for k, v in row.items()
                               if v not in ("", None) and k != "epoch"})
    columns = ["step", "train/bits_per_token", "val/bits_per_token", "lr"]
    with atomic_open(out) as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", delimiter=",")
        w.writeheader()
        for step in sorted(rows):
            w.writerow(rows[step])
