"""The reliability suite, part 2: hostile files given to dnadiff as inputs (issue 26).

Damaged or hostile prepared data (index.json entries missing or of the wrong type, nested too
deeply, token ids outside the vocabulary or the mask id, token arrays of floats or of a wider
integer type, data of another tokenizer, token files outside the folder); a GUE table that is a
link to a private file. Exported folders, the model card and the unsafe pickle:
``test_hostile_exports.py``.

Every case runs the real command line and is marked ``hostile("rejected")`` (exit status 2,
exactly one ``dnadiff: error:`` line naming the file and the problem, nothing left behind) or
``hostile("accepted")``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hostile_kit import (
    assert_ok,
    assert_rejected,
    cfg,
    copy_data,
    edit_json,
    hostile,
    listing,
)

from conftest import run_cli


def likelihood_args(checkpoint, data, tmp_path):
    return ["evaluate", "likelihood", "--config-json", cfg(), "--checkpoint", checkpoint,
            "--data", data, "--out-json", tmp_path / "l.json", "--out-tsv", tmp_path / "l.tsv"]


# ------------------------------------------------------ damaged prepared data (items 14, 15)
def _index(data: Path, change) -> Path:
    return edit_json(data / "index.json", change)


def _contig_file(data: Path, name: str) -> Path:
    index = json.loads((data / "index.json").read_text())
    return data / next(c["file"] for c in index["contigs"] if c["name"] == name)


def _set_token(path: Path, position: int, value: int) -> None:
    arr = np.load(path)
    arr[position] = value
    np.save(path, arr)


INDEX_DAMAGE = {
    "no-pad-id": (lambda i: i["tokenizer"].pop("pad_id"), "pad_id"),
    "contig-without-file": (lambda i: i["contigs"][0].pop("file"), "no 'file'"),
    "n-runs-text": (lambda i: i["contigs"][0].update(n_runs="x"), "'n_runs'"),
    "n-run-outside": (lambda i: i["contigs"][1].update(n_runs=[[5, 10 ** 9]]), "'n_runs'"),
    "segment-split": (lambda i: i["contigs"][0]["segments"][0].update(split="x"), "segment"),
    "length-text": (lambda i: i["contigs"][0].update(length="3000"), "'length'"),
    "contigs-mapping": (lambda i: i.update(contigs={}), "'contigs'"),
    "token-counts-short": (lambda i: i["token_counts"].update(test=[1, 2]), "'token_counts'"),
    "no-counts": (lambda i: (i.pop("token_counts"), i.pop("composition")), "token_counts"),
    "mask-id-text": (lambda i: i["tokenizer"].update(mask_id="5"), "mask_id"),
}


#: the damages of the issue in both verbs; the others where data is read for evaluation
DAMAGE_CASES = [(d, v) for d in INDEX_DAMAGE for v in ("train", "evaluate")
                if v == "evaluate" or d in ("no-pad-id", "contig-without-file", "n-runs-text")]


@hostile("rejected")
@pytest.mark.parametrize("damage,verb", DAMAGE_CASES)
def test_damaged_index_json(world, tmp_path, verb, damage):
    change, needle = INDEX_DAMAGE[damage]
    data = copy_data(world, tmp_path / "data")
    index = _index(data, change)
    before = listing(tmp_path)
    args = (likelihood_args(world["model"], data, tmp_path) if verb == "evaluate" else
            ["train", "--config-json", cfg(), "--data", data, "--checkpoint",
             tmp_path / "out" / "model.pt", "--metrics", tmp_path / "out" / "m.csv",
             "--workdir", tmp_path / "out" / "state"])
    assert_rejected(run_cli(*args), before, [tmp_path], index, needle, "prepare again")


@hostile("rejected")
def test_index_json_nested_too_deeply(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    (data / "index.json").write_text('{"contigs": ' + "[" * 100_000 + "]" * 100_000 + "}")
    before = listing(tmp_path)
    assert_rejected(run_cli(*likelihood_args(world["model"], data, tmp_path)), before,
                    [tmp_path], data / "index.json", "nested too deeply")


@hostile("rejected")
@pytest.mark.parametrize("verb", ["train", "evaluate"])
@pytest.mark.parametrize("contig,value,needle", [
    ("a", 9, "token id 9 (outside the tokenizer's 7 tokens)"),
    ("t", 255, "token id 255 (outside"),
    ("t", 5, "token id 5 (the [MASK] token)"),
    ("a", 5, "token id 5 (the [MASK] token)"),
    ("v", 6, "token id 6 (the [PAD] token)"),
], ids=["9-train", "255-test", "mask-test", "mask-train", "pad-validation"])
def test_token_ids_the_data_may_not_hold(world, tmp_path, verb, contig, value, needle):
    data = copy_data(world, tmp_path / "data")
    target = _contig_file(data, contig)
    _set_token(target, 17, value)
    before = listing(tmp_path)
    args = (likelihood_args(world["model"], data, tmp_path) if verb == "evaluate" else
            ["train", "--config-json", cfg(), "--data", data, "--checkpoint",
             tmp_path / "out" / "model.pt", "--metrics", tmp_path / "out" / "m.csv",
             "--workdir", tmp_path / "out" / "state"])
    line = assert_rejected(run_cli(*args), before, [tmp_path], target, needle, "position 17")
    assert "divergence" not in line and "train.lr" not in line


@hostile("rejected")
def test_token_array_of_floats(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    target = _contig_file(data, "t")
    np.save(target, np.load(target).astype(np.float32))
    before = listing(tmp_path)
    assert_rejected(run_cli(*likelihood_args(world["model"], data, tmp_path)), before,
                    [tmp_path], target, "float32", "not integer token ids")


@hostile("accepted")
def test_token_ids_of_a_wider_integer_type_are_read(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    target = _contig_file(data, "t")
    np.save(target, np.load(target).astype(np.int64))  # same ids, another dtype
    assert_ok(run_cli(*likelihood_args(world["model"], data, tmp_path)))
    res = json.loads((tmp_path / "l.json").read_text())
    assert np.isfinite(res["bits_per_token"]) and np.isfinite(res["bits_per_token_se"])


@hostile("rejected")
def test_evaluate_on_data_of_another_tokenizer(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    _index(data, lambda i: i["tokenizer"]["tokens"].__setitem__(0, "a"))  # a is not A
    before = listing(tmp_path)
    # the model would read the data with ids that mean other tokens to it
    assert_rejected(run_cli(*likelihood_args(world["model"], data, tmp_path)), before,
                    [tmp_path], data, "tokenizer")


# ---------------------------------------------------- reads outside the prepared folder (28)
@hostile("rejected")
@pytest.mark.parametrize("how", ["dotdot", "absolute", "link"])
def test_token_file_outside_the_prepared_folder(world, tmp_path, how):
    data = copy_data(world, tmp_path / "data")
    first = _contig_file(data, "a")
    outside = tmp_path / "outside.npy"
    shutil.copy(first, outside)
    if how == "link":
        first.unlink()
        first.symlink_to(outside)
        target, needle = data / "index.json", "outside the prepared folder"
    else:
        file = "../outside.npy" if how == "dotdot" else str(outside)
        target = _index(data, lambda i: i["contigs"][0].update(file=file))
        needle = "must lie inside the prepared folder"
    before = listing(tmp_path)
    args = ["train", "--config-json", cfg(), "--data", data, "--checkpoint",
            tmp_path / "out" / "model.pt", "--metrics", tmp_path / "out" / "m.csv",
            "--workdir", tmp_path / "out" / "state"]
    assert_rejected(run_cli(*args), before, [tmp_path], target, needle)


# --------------------------------------------------- a GUE table that is something else (28)
def _gue(folder: Path) -> Path:
    folder.mkdir()
    rows = "sequence,label\n" + "".join(f"{'ACGT' * 8},{i % 2}\n" for i in range(8))
    for name in ("train.csv", "dev.csv", "test.csv"):
        (folder / name).write_text(rows)
    return folder


@hostile("rejected")
def test_gue_table_linked_to_a_private_file_is_not_echoed(world, tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:s3cr3t-hash:/root:/bin/bash\n")
    folder = _gue(tmp_path / "gue")
    (folder / "test.csv").unlink()
    (folder / "test.csv").symlink_to(secret)
    conf = cfg(downstream={"tasks": [{"name": "g", "type": "gue", "path": str(folder)}]})
    before = listing(tmp_path)
    line = assert_rejected(run_cli("downstream", "run", "--config-json", conf, "--task", "g",
                                   "--checkpoint", world["model"], "--out-json",
                                   tmp_path / "r.json", "--out-tsv", tmp_path / "r.tsv"),
                           before, [tmp_path], folder / "test.csv",
                           "expected exactly the columns sequence, label")
    for secret_part in ("root", "s3cr3t", "/bin/bash"):
        assert secret_part not in line.replace(str(tmp_path), ""), line
