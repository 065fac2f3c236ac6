"""``dnadiff train``: MDLM (or AR) training with Lightning (CPU here, GPU with bf16-mixed when
present).

Writes the final checkpoint (see ``dnadiff.checkpoint``) and ``metrics.csv`` (one row per logged
step: train loss, learning rate, validation bits per token), published together. Interactive
runs show a progress bar; batch runs log one line every ``train.log_every`` steps.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import signal
import sys
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.environments import SLURMEnvironment
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dnadiff import io, runtime
from dnadiff.checkpoint import save_checkpoint
from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import RandomWindows, TiledWindows
from dnadiff.errors import DnadiffError, OutputError, write_failure
from dnadiff.io import atomic_open
from dnadiff.training.module import DenoiserModule
from dnadiff.training.state import (
    SaveState,
    attempts,
    candidates,
    clear_state,
    discard_state,
    fingerprint,
    launch_rank,
    prepare_workdir,
)

log = logging.getLogger(__name__)


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


def train(cfg: dict, data_dir, checkpoint_out, metrics_out, workdir, progress: bool | None = None
          ) -> dict:
    """``dnadiff train``: the config's model trained on prepared data (random windows of the
    train split, tiled validation windows); see :func:`fit`."""
    tc = cfg["train"]
    genome = PreparedData(data_dir)
    tokenizer = genome.tokenizer
    window = cfg["data"]["window"]
    L.seed_everything(tc["seed"], workers=True, verbose=False)
    train_ds = RandomWindows(genome, "train", window, tc["steps"] * tc["batch_size"],
                             seed=tc["seed"], complement=tokenizer.complement,
                             rc_prob=cfg["data"]["rc_augment"])
    val_ds = TiledWindows(genome, "validation", window, max_windows=tc["val_windows"])
    return fit(cfg, tokenizer, train_ds, val_ds, checkpoint_out, metrics_out, workdir, progress,
               data_id=genome.index_sha256, data=genome.provenance())


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


def fit(cfg: dict, tokenizer, train_ds, val_ds, checkpoint_out, metrics_out, workdir,
        progress: bool | None = None, init_state: dict | None = None,
        extra_metrics: dict | None = None, data_id: str = "", data: dict | None = None
        ) -> dict:
    """Train ``cfg``'s model on map-style datasets of {"tokens", "loss_mask"[, "label"]}.

    ``train_ds`` holds ``steps * batch_size`` items, read in order (each optimizer step takes
    the next ``batch_size``, split over devices x nodes and accumulation micro-batches).
    ``init_state`` starts from given weights (missing keys, such as a new class table, keep
    their initialization). The training state is checkpointed in ``workdir`` after every
    validation (and by Lightning on a SLURM signal); a run started again with the same config,
    data (``data_id``) and initial weights resumes from the newest checkpoint there and reads
    on from the window where it stopped. Only rank 0 writes the outputs. ``data``: where the
    training data came from, recorded in the checkpoint (its model card reports it).
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
    resume_from, start_step = prepare_workdir(workdir, fingerprint(cfg, train_ds, data_id),
                                               tc["resume"], tc["devices"])
    try:
        return _fit(cfg, tokenizer, train_ds, val_ds, checkpoint_out, metrics_out, workdir,
                    progress, init_state, extra_metrics, plan, resume_from, start_step,
                    data=data)
    except BaseException:
        if launch_rank(tc["devices"]) == 0 and not candidates(workdir):
            discard_state(workdir, remove_folder=not existed)
        raise


def _fit(cfg, tokenizer, train_ds, val_ds, checkpoint_out, metrics_out, workdir, progress,
         init_state, extra_metrics, plan, resume_from, start_step, data=None) -> dict:
    tc = cfg["train"]
    window = cfg["data"]["window"]
    if resume_from is not None:
        if launch_rank(tc["devices"]) == 0:
            log.info("resuming from %s (step %d of %d)", resume_from, start_step, tc["steps"])
        train_ds = _Shifted(train_ds, start_step * tc["batch_size"])
    L.seed_everything(tc["seed"], workers=True, verbose=False)
    loader_kw = {"num_workers": tc["num_workers"], "persistent_workers": tc["num_workers"] > 0}
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
                          pin_memory=runtime.training_precision(tc)[0] == "gpu", **loader_kw)
    val_dl = DataLoader(val_ds, batch_size=plan["per_device"], shuffle=False, **loader_kw)

    module = DenoiserModule(cfg, tokenizer)
    if init_state is not None:
        missing, unexpected = module.model.load_state_dict(init_state, strict=False)
        if unexpected or any(not k.startswith("class_embed") for k in missing):
            raise ValueError(f"initial weights do not fit this model (missing {missing}, "
                             f"unexpected {unexpected})")
    accel, precision = runtime.training_precision(tc)
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
    attempt = len(attempts(workdir))
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
                        ema_state=ema_state, data=data)
        _tidy_metrics([a / "metrics.csv" for a in attempts(workdir)
                       if (a / "metrics.csv").is_file()], metrics_out)
        io.after_publish(lambda: clear_state(workdir))
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
