"""``dnadiff train``: MDLM training with Lightning (CPU here, GPU with bf16-mixed when present).

Writes the final checkpoint (see ``dnadiff.checkpoint``) and ``metrics.csv`` (one row per logged
step: train loss, learning rate, validation bits per token). Interactive runs show a progress bar;
batch runs log one line every ``train.log_every`` steps.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import shutil
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from dnadiff.checkpoint import save_checkpoint
from dnadiff.data.windows import PreparedGenome, RandomWindows, TiledWindows
from dnadiff.diffusion import build_objective
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
        for k, v in model.state_dict().items():
            if k in self.shadow:
                if self.shadow[k].device != v.device:  # the model moved (e.g. to the GPU)
                    self.shadow[k] = self.shadow[k].to(v.device)
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1.0 - d)

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

    def on_fit_start(self):
        if self.cfg["train"]["ema_decay"] > 0 and self.ema is None:
            self.ema = EMA(self.model, self.cfg["train"]["ema_decay"])

    def training_step(self, batch, batch_idx):
        loss = self.objective.loss(self.model, batch["tokens"], batch["loss_mask"],
                                   cond=self._labels(batch, drop=True))
        self.log("train/bits_per_token", loss.detach() / LN2, prog_bar=True)
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

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.ema is not None:
            self.ema.update(self.model)

    def on_validation_epoch_start(self):
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
        bits = self._val[0] / max(self._val[1], 1) / LN2
        if self.cfg["train"]["keep"] == "best" and (self.best is None or bits < self.best[0]):
            # the weights just validated (the EMA ones when there is an EMA)
            self.best = (bits, int(self.global_step),
                         {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()})
        if self._ema_ctx is not None:
            self._ema_ctx.__exit__(None, None, None)
            self._ema_ctx = None
        self.log("val/bits_per_token", bits, prog_bar=True)

    def configure_optimizers(self):
        tc = self.cfg["train"]
        opt = torch.optim.AdamW(self.model.parameters(), lr=tc["lr"], betas=(0.9, 0.98),
                                weight_decay=tc["weight_decay"])
        total, warm = tc["steps"], tc["warmup_steps"]

        def factor(step):  # linear warmup, then cosine decay to 10% of the peak
            if step < warm:
                return (step + 1) / warm
            progress = min(1.0, (step - warm) / max(1, total - warm))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class LineProgress(L.Callback):
    """Plain log lines (no progress-bar control characters) for non-interactive runs."""

    def __init__(self, every: int, total: int):
        self.every, self.total, self.t0 = every, total, None

    def on_train_start(self, trainer, module):
        self.t0 = time.time()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step % self.every and step != self.total:
            return
        elapsed = time.time() - self.t0
        eta = elapsed / max(step, 1) * (self.total - step)
        loss = float(outputs["loss"]) / LN2 if isinstance(outputs, dict) else float("nan")
        val = trainer.callback_metrics.get("val/bits_per_token")
        val_s = f" val {float(val):.4f}" if val is not None else ""
        print(f"step {step}/{self.total} train {loss:.4f} bits/token{val_s} "
              f"{elapsed / max(step, 1):.2f} s/step ETA {eta / 60:.1f} min",
              file=sys.stderr, flush=True)


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
    return fit(cfg, tokenizer, train_ds, val_ds, checkpoint_out, metrics_out, workdir, progress)


def fit(cfg: dict, tokenizer: dict, train_ds, val_ds, checkpoint_out, metrics_out, workdir,
        progress: bool | None = None, init_state: dict | None = None,
        extra_metrics: dict | None = None) -> dict:
    """Train ``cfg``'s model on map-style datasets of {"tokens", "loss_mask"[, "label"]}.

    ``train_ds`` holds ``steps * batch_size`` items, read in order. ``init_state`` starts from
    given weights (missing keys, such as a new class table, keep their initialization).
    """
    tc = cfg["train"]
    window = cfg["data"]["window"]
    L.seed_everything(tc["seed"], workers=True, verbose=False)
    loader_kw = dict(num_workers=tc["num_workers"], persistent_workers=tc["num_workers"] > 0)
    train_dl = DataLoader(train_ds, batch_size=tc["batch_size"], shuffle=False, drop_last=True,
                          **loader_kw)
    val_dl = DataLoader(val_ds, batch_size=tc["batch_size"], shuffle=False, **loader_kw)

    module = DenoiserModule(cfg, tokenizer)
    if init_state is not None:
        missing, unexpected = module.model.load_state_dict(init_state, strict=False)
        if unexpected or any(not k.startswith("class_embed") for k in missing):
            raise ValueError(f"initial weights do not fit this model (missing {missing}, "
                             f"unexpected {unexpected})")
    accel, precision = resolve_precision(tc)
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    if progress is None:
        progress = sys.stderr.isatty()
    callbacks = [] if progress else [LineProgress(tc["log_every"], tc["steps"])]
    trainer = L.Trainer(
        accelerator=accel, devices=1, precision=precision, max_steps=tc["steps"],
        val_check_interval=min(tc["val_every"], tc["steps"]), check_val_every_n_epoch=None,
        num_sanity_val_steps=0, log_every_n_steps=tc["log_every"],
        gradient_clip_val=tc["grad_clip"] or None, enable_checkpointing=False,
        enable_progress_bar=progress, enable_model_summary=False, callbacks=callbacks,
        logger=L.pytorch.loggers.CSVLogger(workdir, name="", version=""),
        default_root_dir=workdir, deterministic=False)
    n_params = sum(p.numel() for p in module.model.parameters())
    log.info("training %s with the %s objective (%.2fM parameters) for %d steps on %s, "
             "precision %s", cfg["model"]["backbone"], cfg["objective"], n_params / 1e6,
             tc["steps"], accel, precision)
    t0 = time.time()
    trainer.fit(module, train_dl, val_dl)
    elapsed = time.time() - t0
    if trainer.global_step % tc["val_every"]:
        trainer.validate(module, val_dl, verbose=False)
    final_val = float(trainer.callback_metrics.get("val/bits_per_token", float("nan")))
    metrics = {"objective": cfg["objective"], "steps": int(trainer.global_step),
               "train_seconds": round(elapsed, 1),
               "tokens_seen": int(trainer.global_step * tc["batch_size"] * window),
               "parameters": int(n_params), "val_bits_per_token": final_val,
               "accelerator": accel, "precision": precision, **(extra_metrics or {})}
    ema_state = module.ema.state_dict(module.model) if module.ema is not None else None
    step = trainer.global_step
    if module.best is not None:
        bits, step, weights = module.best
        log.info("keeping the weights of step %d (validation %.4f bits per token; final step %d: "
                 "%.4f)", step, bits, trainer.global_step, final_val)
        metrics.update(val_bits_per_token=bits, kept_step=step)
        module.model.load_state_dict(weights)
        ema_state = None  # the kept weights are already the averaged ones
    save_checkpoint(checkpoint_out, module.model, cfg, tokenizer, step, metrics,
                    ema_state=ema_state)
    _tidy_metrics(workdir / "metrics.csv", metrics_out)
    return metrics


def _tidy_metrics(lightning_csv: Path, out) -> None:
    """Merge Lightning's sparse metric rows into one row per step."""
    rows: dict[int, dict] = {}
    with open(lightning_csv) as fh:
        for row in csv.DictReader(fh):
            step = int(row["step"])
            merged = rows.setdefault(step, {"step": step})
            merged.update({k: v for k, v in row.items() if v not in ("", None) and k != "epoch"})
    columns = ["step", "train/bits_per_token", "val/bits_per_token", "lr"]
    with atomic_open(out) as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", delimiter=",")
        w.writeheader()
        for step in sorted(rows):
            w.writerow(rows[step])
