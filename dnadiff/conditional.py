"""Class-conditional MDLM on a labeled benchmark task, classifier-free guidance, and oracle scoring.

Training: the run's MDLM (pretrained weights by default) gets a label embedding (small random
initialization) added to its adaLN conditioning; a fraction ``p_uncond`` of training labels is
replaced by the null label, so one network learns p(x | y) and p(x).

Sampling with guidance weight w uses, at every step, the logits
``(1 + w) * log p(x | y) - w * log p(x)`` renormalized over the generable tokens
(w = 0: the conditional model alone; larger w: sharper class features, less diversity).

Scoring: an *oracle* classifier trained on the real benchmark (``dnadiff.downstream``) labels
every sample; the agreement for class c is the fraction of samples asked for as c that the
oracle assigns to c. The same oracle scores unconditional samples (how often class c comes
out when nothing is asked for) and real held-out sequences of each class (its recall: the
ceiling any generator can reach under this oracle).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from dnadiff import runtime
from dnadiff.checkpoint import load_classifier, model_from_checkpoint
from dnadiff.config import validate_config
from dnadiff.data.fasta import iter_fasta_raw
from dnadiff.diffusion.guidance import Guided
from dnadiff.diffusion.samplers import block_sampler, sampler_options
from dnadiff.diffusion.samplers.driver import fill_batches
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.models.classifier import predict_proba
from dnadiff.resolve import resolve_section
from dnadiff.tasks import split_validation
from dnadiff.tokenizers import N_BASES, DNATokenizer
from dnadiff.training import fit

log = logging.getLogger(__name__)


class LabeledSequences(Dataset):
    """``length`` items drawn (with replacement, seeded) from a LabeledSet of equal lengths,
    each reverse-complemented with probability ``rc_prob``: {"tokens", "loss_mask", "label"}."""

    def __init__(self, labeled, length: int, seed: int = 0, complement=None,
                 rc_prob: float = 0.0):
        lengths = {len(s) for s in labeled.seqs}
        if len(lengths) != 1:
            raise DnadiffError("conditional training needs sequences of one length "
                               f"(the task has {len(lengths)} lengths)")
        self.tokens = torch.from_numpy(np.stack([np.asarray(s, np.int64) for s in labeled.seqs]))
        self.labels = torch.as_tensor(labeled.labels, dtype=torch.long)
        rng = np.random.default_rng(seed)
        self.index = rng.integers(0, len(labeled.seqs), size=length) if length else \
            np.arange(len(labeled.seqs))
        self.flip = rng.random(len(self.index)) < rc_prob
        self.complement = None if complement is None else torch.as_tensor(complement)

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        j = int(self.index[i])
        x = self.tokens[j]
        if self.flip[i] and self.complement is not None:
            x = self.complement[x].flip(0)
        return {"tokens": x, "loss_mask": x < N_BASES, "label": self.labels[j]}


def conditional_config(pre_cfg: dict, run_cfg: dict, task) -> dict:
    """The pretrained run's config turned into the conditional run's."""
    cond_cfg = run_cfg["conditional"]
    cfg = copy.deepcopy(pre_cfg)
    cfg["downstream"] = copy.deepcopy(run_cfg["downstream"])
    cfg["objective"] = "mdlm"
    # plain MDLM (the whole window one block), also from a block diffusion checkpoint: the
    # weights are the same network's, and guidance mixes two whole-window predictions
    cfg["diffusion"]["block_size"] = None
    cfg["model"]["num_classes"] = len(task.classes)
    cfg["model"]["rc_conjoin"] = False
    cfg["data"]["window"] = int(task.length)
    cfg["conditional"] = copy.deepcopy(cond_cfg)
    for key in ("steps", "batch_size", "lr", "warmup_steps", "val_every"):
        cfg["train"][key] = cond_cfg[key]
    cfg["train"]["keep"] = "last"  # validation is monitoring only here, not model selection
    # one device, whatever the pretraining ran on
    cfg["train"].update(devices=1, num_nodes=1, strategy="auto", micro_batch_size=None,
                        compile=False)
    return cfg


def train_conditional(task, pre_ckpt: dict, run_cfg: dict, checkpoint_out, metrics_out,
                      workdir, progress=None) -> dict:
    """Train the class-conditional MDLM of ``task`` from a pretrained checkpoint (or scratch)."""
    if task.length is None:
        raise DnadiffError(f"task {task.name!r}: conditional generation needs sequences of one "
                           "length")
    if pre_ckpt["config"].get("objective") == "ar":
        raise DnadiffError("conditional generation needs an MDLM checkpoint, not an AR one")
    cond_cfg = run_cfg["conditional"]
    cfg = validate_config(conditional_config(pre_ckpt["config"], run_cfg, task),
                          "conditional config")
    tok = pre_ckpt["tokenizer"]
    tc = cfg["train"]
    train_set, val = task.train, task.validation
    if val is None:  # monitoring only (no model selection): a stratified split of train
        train_set, val = split_validation(task.train, cond_cfg["validation_fraction"],
                                          tc["seed"])
    train_ds = LabeledSequences(train_set, tc["steps"] * tc["batch_size"], seed=tc["seed"],
                                complement=tok.complement,
                                rc_prob=cond_cfg["rc_augment"])
    val_ds = LabeledSequences(val, 0)
    # validation loss is for monitoring: a seeded draw of 1,024 suffices (not file order,
    # which may be sorted by class)
    val_ds.index = np.sort(np.random.default_rng(tc["seed"]).permutation(len(val_ds))[:1024])
    val_ds.flip = val_ds.flip[:len(val_ds.index)]
    init = None
    if cond_cfg["init"] == "pretrained":
        init = pre_ckpt.get("ema_state_dict") or pre_ckpt["state_dict"]
    return fit(cfg, tok, train_ds, val_ds, checkpoint_out, metrics_out, workdir, progress,
               init_state=init, extra_metrics={"task": task.name, "classes": list(task.classes),
                                               "init": cond_cfg["init"]},
               data_id=f"task:{task.name}:{len(train_set.labels)}:{len(val.labels)}")


@torch.no_grad()
def sample_conditional(ckpt: dict, cond_cfg: dict, seed: int = 0, device: str = "auto",
                       sample_cfg: dict | None = None):
    """Yield (label name or "unconditional", guidance, tokens [n, L]) for every class and
    guidance weight, then unconditional samples (null label); with ``sample_cfg`` (a ``sample``
    config section) its sampler and that sampler's options (default: the objective's)."""

    model, mdlm, tok = model_from_checkpoint(ckpt)
    if not model.num_classes:
        raise DnadiffError("not a class-conditional checkpoint (model.num_classes is null)")
    dev = runtime.device(device)
    model = model.to(dev)
    classes = ckpt["metrics"].get("classes") or [str(i) for i in range(model.num_classes)]
    length = ckpt["config"]["data"]["window"]
    n = cond_cfg["samples_per_class"]
    steps = resolve_section("conditional", cond_cfg, length)["sampling_steps"]
    bs = cond_cfg["sample_batch_size"]
    plan = [(c, w) for c in range(model.num_classes) for w in cond_cfg["guidance"]]
    plan.append((model.num_classes, 0.0))
    sampler = (sample_cfg or {}).get("sampler")
    try:
        options = sampler_options(sampler, sample_cfg or {}, mdlm.name)
    except ValueError as exc:
        raise DnadiffError(f"config key 'sample.sampler': {exc}") from None
    for k, (label, w) in enumerate(plan):
        gen = torch.Generator().manual_seed(seed * 100_003 + k)
        fill = block_sampler(sampler, mdlm, Guided(model, torch.tensor(label), w), steps=steps,
                             **options)
        start = torch.full((length,), mdlm.mask_id, dtype=torch.long)
        out = [x for _, x, _ in fill_batches(fill, n, bs, start, gen, dev)]
        name = classes[label] if label < model.num_classes else "unconditional"
        log.info("sampled %d sequences for %s (guidance %g)", n, name, w)
        yield name, w, torch.cat(out).numpy()


def oracle_agreement(oracle, classes, samples: list[tuple[str, float, np.ndarray]],
                     test, train=None) -> list[dict]:
    """Rows: for each (requested class or unconditional, guidance) the fraction of samples the
    oracle assigns to each class, and for real held-out sequences of each class likewise.

    With ``train`` (the task's training set, which the generator and the oracle both saw),
    ``train_copy_rate`` is the fraction of sequences identical to a training sequence on either
    strand: copies would score as agreement without any generalization.
    """

    rows = []
    seen = set()
    if train is not None:
        comp = DNATokenizer().complement
        for s in train.seqs:
            s = np.asarray(s, dtype=np.int64)
            seen.add(s.tobytes())
            seen.add(np.ascontiguousarray(comp[s][::-1]).tobytes())

    def add(source, requested, w, seqs):
        pred = predict_proba(oracle, list(seqs)).argmax(1)
        row = {"source": source, "requested": requested, "guidance": w, "n": len(seqs)}
        if train is not None:
            copies = sum(np.asarray(s, dtype=np.int64).tobytes() in seen for s in seqs)
            row["train_copy_rate"] = copies / len(seqs) if len(seqs) else float("nan")
        for ci, c in enumerate(classes):
            row[f"frac_{c}"] = float((pred == ci).mean()) if len(seqs) else float("nan")
        row["agreement"] = (row[f"frac_{requested}"] if requested in classes else float("nan"))
        rows.append(row)

    for name, w, x in samples:
        if name == "unconditional":
            add("mdlm_unconditional", "NA", "NA", x)
        else:
            add("mdlm_conditional", name, w, x)
    for ci, c in enumerate(classes):
        seqs = [s for s, y in zip(test.seqs, test.labels) if y == ci]
        add("real_test", c, "NA", seqs)
    return rows


# -- the samples as FASTA records, read back; their oracle agreement --------------------------
def sample_records(ckpt: dict, cfg: dict, seed: int = 0):
    """Yield (header, sequence) of every sample of :func:`sample_conditional`, every (class,
    guidance) group and then the unconditional one; headers ``<class>_w<guidance>_<i>
    class=<class> guidance=<w> run=<run>`` (read back by :func:`read_conditional_samples`)."""
    tok = ckpt["tokenizer"]
    for name, w, x in sample_conditional(ckpt, cfg["conditional"], seed,
                                         cfg["downstream"]["device"], cfg["sample"]):
        for i, row in enumerate(x):
            tag = f"{name}_w{w:g}" if name != "unconditional" else name
            yield (f"{tag}_{i} class={name} guidance={w:g} run={cfg['run']}",
                   tok.decode(row))


def read_conditional_samples(path) -> list[tuple[str, float, np.ndarray]]:
    """Groups (class, guidance, tokens [n, L]) from a FASTA of :func:`sample_records`."""
    tok = DNATokenizer()
    groups: dict[tuple[str, float], list] = {}
    with open(path) as fh:
        headers = [ln[1:].split() for ln in fh if ln.startswith(">")]
    for (name, seq, line), head in zip(iter_fasta_raw(path), headers):
        meta = dict(kv.split("=", 1) for kv in head[1:] if "=" in kv)
        try:
            key = (meta["class"], float(meta["guidance"]))
        except (KeyError, ValueError):
            raise InputFileError(path, f"line {line}: record {name!r} has no valid class=/"
                                       "guidance= fields (not written by dnadiff conditional "
                                       "sample)") from None
        groups.setdefault(key, []).append(
            tok.encode_bytes(seq).astype(np.int64))
    return [(c, w, np.stack(v)) for (c, w), v in groups.items()]


def score_samples(task, samples_fa, oracle_path) -> list[dict]:
    """The oracle agreement (:func:`oracle_agreement`) of the samples in ``samples_fa`` (a
    FASTA of :func:`sample_records`) under the oracle classifier of ``task``."""
    oracle, meta = load_classifier(oracle_path)
    if list(meta["classes"]) != list(task.classes):
        raise DnadiffError(f"{oracle_path}: the oracle's classes {meta['classes']} are not the "
                           f"task's {task.classes}")
    return oracle_agreement(oracle, list(task.classes), read_conditional_samples(samples_fa),
                            task.test, task.train)
