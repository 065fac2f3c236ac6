"""Class-conditional MDLM: label conditioning, classifier-free guidance, training and sampling."""

import numpy as np
import pytest
import torch

from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from dnadiff.cli import main
from dnadiff.cli.common import write_outputs
from dnadiff.conditional import (
    LabeledSequences,
    oracle_agreement,
    read_conditional_samples,
    sample_records,
    train_conditional,
)
from dnadiff.config import validate_config
from dnadiff.diffusion import build_objective
from dnadiff.diffusion.guidance import Guided
from dnadiff.errors import DnadiffError
from dnadiff.models import build_backbone
from dnadiff.tasks import LabeledSet, LabeledTask
from dnadiff.tokenizers import DNATokenizer

TOK = DNATokenizer()


def model_cfg(**kw):
    return validate_config({"run": "t", "data": {"window": 16},
                            "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 8,
                                      **kw}})["model"]


def test_a_new_class_table_leaves_a_pretrained_model_unchanged():
    """Without time conditioning, training leaves the adaLN weights and the constant vector at
    exactly zero (their gradients go through each other): a fresh, random class table changes
    nothing at first, and the label can still be learned (c != 0 gives the adaLN weights a
    gradient)."""
    torch.manual_seed(0)
    plain = build_backbone(model_cfg(), TOK.vocab_size)
    with torch.no_grad():
        for name, p in plain.named_parameters():
            if "ada" not in name and name != "const_cond":
                p.normal_(0, 0.3)
    cond = build_backbone(model_cfg(num_classes=3), TOK.vocab_size)
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["class_embed.weight"] and not unexpected
    assert cond.class_embed.weight.shape == (4, 8)  # 3 classes + the null label
    assert cond.class_embed.weight.abs().max() > 0
    x = torch.randint(0, 4, (4, 16))
    labels = torch.tensor([0, 1, 2, 3])
    assert torch.equal(cond(x, cond=labels), plain(x))
    loss = cond(x, cond=labels).logsumexp(-1).sum()
    loss.backward()
    assert cond.blocks[0].ada.weight.grad.abs().max() > 0  # the label can be learned
    with torch.no_grad():
        cond.blocks[0].ada.weight.normal_()
    assert not torch.allclose(cond(x[:1], cond=torch.tensor([0])),
                              cond(x[:1], cond=torch.tensor([1])))
    with pytest.raises(ValueError, match="no class labels"):
        plain(x, cond=labels)


def test_guidance_mixes_log_probabilities_and_is_neutral_without_class_signal():
    torch.manual_seed(1)
    model = build_backbone(model_cfg(num_classes=2), TOK.vocab_size)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    model.eval()
    mdlm = build_objective(validate_config({"run": "t"}), TOK)
    x = torch.randint(0, 4, (3, 16))
    x[:, ::3] = TOK.mask_id
    t = torch.full((3,), 0.5)
    w = 2.0
    lp = mdlm.log_probs(Guided(model, torch.tensor(1), w), x, t)
    lc = mdlm.log_probs(model, x, t, torch.tensor([1, 1, 1]))
    lu = mdlm.log_probs(model, x, t, torch.tensor([2, 2, 2]))
    ok = torch.isfinite(lc)
    mix = torch.where(ok, (1 + w) * lc - w * lu, torch.full_like(lc, float("-inf")))
    expect = torch.log_softmax(mix, -1)
    assert torch.allclose(lp[ok], expect[ok], atol=1e-5)
    assert torch.equal(torch.isfinite(lp), ok)  # mask and N keep zero probability
    # w = 0 is the conditional model
    assert torch.allclose(mdlm.log_probs(Guided(model, torch.tensor(1), 0.0), x, t), lc)
    # a class table equal for every label: guidance changes nothing
    with torch.no_grad():
        model.class_embed.weight.copy_(model.class_embed.weight[0].expand(3, -1))
    lc = mdlm.log_probs(model, x, t, torch.tensor([1, 1, 1]))
    assert torch.allclose(mdlm.log_probs(Guided(model, torch.tensor(1), 5.0), x, t), lc,
                          atol=1e-5)


def two_class_task(n=200, length=16, seed=0):
    """Class 0: A/T only; class 1: C/G only."""
    rng = np.random.default_rng(seed)

    def make(m):
        labels = np.arange(m) % 2
        seqs = [rng.choice([0, 3] if y == 0 else [1, 2], size=length).astype(np.uint8)
                for y in labels]
        return LabeledSet(seqs, labels, [f"s{i}" for i in range(m)])
    return LabeledTask("at_vs_gc", ["AT", "GC"], make(n), make(n // 4), make(n // 4), length,
                         "synthetic")


def test_labeled_sequences_dataset():
    task = two_class_task(n=20)
    ds = LabeledSequences(task.train, 50, seed=0, complement=TOK.complement, rc_prob=0.5)
    assert len(ds) == 50
    item = ds[0]
    assert item["tokens"].shape == (16,) and item["loss_mask"].all()
    for i in range(50):
        it = ds[i]
        allowed = {0, 3} if int(it["label"]) == 0 else {1, 2}
        assert set(it["tokens"].tolist()) <= allowed  # RC keeps A/T vs C/G classes
    mixed = LabeledSet([np.zeros(4, np.uint8), np.zeros(5, np.uint8)], np.array([0, 1]),
                       ["a", "b"])
    with pytest.raises(DnadiffError, match="one length"):
        LabeledSequences(mixed, 4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny MDLM 'pretrained' on nothing, then trained class-conditionally."""
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("cond")
    cfg = validate_config({"run": "t", "data": {"window": 16},
                           "model": {"dim": 32, "layers": 2, "heads": 2, "cond_dim": 16}})
    model = build_backbone(cfg["model"], TOK.vocab_size)
    pre = work / "pre.pt"
    save_checkpoint(pre, model, cfg, TOK, step=0)
    task = two_class_task()
    run_cfg = validate_config({"run": "t", "downstream": {"tasks": [
        {"name": "at_vs_gc", "type": "gue", "path": "unused"}]},
        "conditional": {"task": "at_vs_gc", "steps": 150, "batch_size": 32, "lr": 3e-3,
                        "warmup_steps": 10, "val_every": 50, "samples_per_class": 16,
                        "guidance": [0.0, 2.0], "sampling_steps": 16}})
    out = work / "cond.pt"
    metrics = train_conditional(task, load_checkpoint(pre), run_cfg, out, work / "m.csv",
                                work / "wd", progress=False)
    return task, run_cfg, out, metrics, work


def test_conditional_training_records_the_task(trained):
    task, _, out, metrics, _ = trained
    ckpt = load_checkpoint(out)
    assert ckpt["config"]["model"]["num_classes"] == 2
    assert ckpt["metrics"]["classes"] == ["AT", "GC"] and metrics["steps"] == 150
    assert ckpt["config"]["data"]["window"] == 16


def test_samples_follow_the_requested_class(trained):
    task, run_cfg, out, _, work = trained
    fa = work / "samples.fa"
    records = list(sample_records(load_checkpoint(out), run_cfg))
    assert len(records) == 2 * 2 * 16 + 16
    write_outputs({fa: ("fasta", records)})  # as `dnadiff conditional sample` writes them
    groups = {(c, w): x for c, w, x in read_conditional_samples(fa)}
    assert set(groups) == {("AT", 0.0), ("AT", 2.0), ("GC", 0.0), ("GC", 2.0),
                           ("unconditional", 0.0)}
    for (c, w), x in groups.items():
        assert x.shape == (16, 16) and x.max() < 4
        at = np.isin(x, [0, 3]).mean()
        if c == "AT":
            assert at > 0.9, (c, w, at)
        elif c == "GC":
            assert at < 0.1, (c, w, at)
        else:  # unconditional: both kinds of sequence
            per_seq = np.isin(x, [0, 3]).mean(1)
            assert (per_seq > 0.5).any() and (per_seq < 0.5).any()


def test_oracle_agreement_counts():
    class Oracle(torch.nn.Module):  # "GC" when most bases are C/G
        def forward(self, tokens, mask):
            gc = ((tokens == 1) | (tokens == 2)).float().mean(1)
            return torch.stack([1 - gc, gc], 1) * 10

        def parameters(self):
            return iter([torch.zeros(1)])

    task = two_class_task(n=8)
    at = np.zeros((4, 16), np.int64)
    gc = np.ones((4, 16), np.int64)
    rows = oracle_agreement(Oracle(), ["AT", "GC"],
                            [("AT", 0.0, at), ("GC", 0.0, np.concatenate([gc[:3], at[:1]])),
                             ("unconditional", 0.0, np.concatenate([at[:1], gc[:3]]))],
                            task.test, train=LabeledSet([at[0], gc[0][:8]], np.array([0, 1]),
                                                        ["a", "b"]))
    by = {(r["source"], r["requested"]): r for r in rows}
    assert by[("mdlm_conditional", "AT")]["train_copy_rate"] == 1.0  # all-A copies of at[0]
    assert by[("mdlm_conditional", "GC")]["train_copy_rate"] == 0.25
    assert by[("mdlm_unconditional", "NA")]["train_copy_rate"] == 0.25
    assert by[("mdlm_conditional", "AT")]["agreement"] == 1.0
    assert by[("mdlm_conditional", "GC")]["agreement"] == 0.75
    assert by[("mdlm_unconditional", "NA")]["frac_GC"] == 0.75
    assert by[("real_test", "AT")]["agreement"] == 1.0 and by[("real_test", "GC")]["n"] == 1


def test_unconditional_checkpoint_refused_for_conditional_sampling(tmp_path, capsys):
    cfg = validate_config({"run": "t", "data": {"window": 16},
                           "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 8}})
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_backbone(cfg["model"], TOK.vocab_size), cfg, TOK,
                    step=0)
    with pytest.raises(DnadiffError, match="not a class-conditional checkpoint"):
        next(sample_records(load_checkpoint(path), validate_config({"run": "t"})))
    assert main(["conditional", "sample", "--config-json", '{"run": "t"}', "--checkpoint",
                 str(path), "--out", str(tmp_path / "o.fa")]) == 2
    assert "not a class-conditional checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "o.fa").exists()
    model, _, _ = model_from_checkpoint(load_checkpoint(path))
    assert model.num_classes is None
