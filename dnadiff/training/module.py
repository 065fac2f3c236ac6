"""The training module: any backbone under any objective as a LightningModule (the one
training step, with the EMA of the weights, gradient clipping, the non-finite-loss guard and the
saved random stream), and the optimizer with its learning-rate schedule."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings

import lightning as L
import torch

from dnadiff.diffusion import build_objective
from dnadiff.errors import DnadiffError
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

    def __init__(self, cfg: dict, tokenizer):
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.objective = build_objective(cfg, tokenizer)
        self.model = build_backbone(cfg["model"], tokenizer.vocab_size,
                                    causal=self.objective.causal,
                                    complement=tokenizer.complement)
        self.ema = None
        self._val = [0.0, 0]
        self._ema_ctx = None
        self.best = None  # (bits, step, weights) of the best validation (train.keep: best)
        self._restored_ema = None
        # the network the steps run (torch.compile'd when train.compile); self.model is the
        # plain module that gets saved. Not a submodule, so checkpoint keys never depend on
        # compiling (ARCHITECTURE.md, "Design decisions").
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
            if self._restored_rng.get("cuda") is not None and self.device.type == "cuda":
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
