"""Shared pieces of the reliability suite (tests/test_hostile*.py): the checks that a case was
rejected cleanly or accepted, and the tiny world (genome, prepared data, model) cases run on.

Every case is marked ``hostile("rejected")`` (bad input or a fault: exit status 2, exactly one
stderr line ``dnadiff: error: ...`` naming the file and the problem, and no new file or folder
left behind) or ``hostile("accepted")`` (odd but valid: it works, and leaves nothing stray); the
table of cases is printed by ``conftest.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, random_dna, run_cli, write_fasta

hostile = pytest.mark.hostile


class LeftoverError(AssertionError):
    """A failure that left files behind (counted as "partial outputs left")."""


# ---------------------------------------------------------------------------------- helpers
def listing(*folders) -> set[str]:
    """Every path under ``folders`` (hidden ones too), as strings."""
    out = set()
    for folder in folders:
        folder = Path(folder)
        if folder.exists():
            out |= {str(p) for p in folder.rglob("*")} | {str(folder)}
    return out


def assert_rejected(proc, before: set[str], folders, *needles) -> str:
    """Exit 2, one ``dnadiff: error:`` line holding every needle, no traceback, and the
    folders hold exactly what they held before."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("dnadiff: error:")]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert len(lines) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert str(needle).lower() in lines[0].lower(), (needle, lines[0])
    after = listing(*folders)
    if after != before:
        raise LeftoverError(f"left behind: {sorted(after - before)}; removed: "
                            f"{sorted(before - after)}")
    return lines[0]


def assert_ok(proc) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def no_temporaries(*folders) -> None:
    stray = [p for p in listing(*folders) if ".tmp-" in Path(p).name or ".old-" in Path(p).name
             or Path(p).name.endswith(".tmp")]
    if stray:
        raise LeftoverError(f"temporaries left: {stray}")


TINY = {"run": "h", "data": {"window": 32, "splits": {"validation": ["v"], "test": ["t"]}},
        "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 16},
        "train": {"steps": 6, "batch_size": 4, "val_every": 3, "val_windows": 2, "log_every": 3,
                  "warmup_steps": 1},
        "sample": {"num_samples": 2, "steps": 4, "batch_size": 2},
        "evaluate": {"max_windows": 4}}


def cfg(**sections) -> str:
    out = json.loads(json.dumps(TINY))
    for key, value in sections.items():
        if isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return json.dumps(out)


def genome_records(seed: int = 0):
    return [("a", random_dna(3000, seed)), ("b", random_dna(3000, seed + 1)),
            ("v", random_dna(1000, seed + 2)), ("t", random_dna(1000, seed + 3))]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A genome, its prepared data and a trained tiny model (shared, never modified)."""
    root = tmp_path_factory.mktemp("hostile")
    fa = write_fasta(root / "g.fa", genome_records())
    assert_ok(run_cli("prepare", "--config-json", cfg(), "--fasta", fa, "--outdir",
                      root / "data"))
    assert_ok(run_cli("train", "--config-json", cfg(), "--data", root / "data", "--checkpoint",
                      root / "m.pt", "--metrics", root / "m.csv", "--workdir", root / "state"))
    return {"fasta": fa, "data": root / "data", "model": root / "m.pt", "root": root}


def train_args(data, out: Path, config=None):
    return ["train", "--config-json", config or cfg(), "--data", data, "--checkpoint",
            out / "model.pt", "--metrics", out / "metrics.csv", "--workdir", out / "state"]


def copy_data(world, dst: Path) -> Path:
    shutil.copytree(world["data"], dst)
    return dst


@pytest.fixture
def small_fs(tmp_path):
    """``make(size, read_only)`` mounts a tmpfs of ``size`` (read-only if asked) and returns
    its folder; skipped where this process may not mount (not root, no CAP_SYS_ADMIN)."""
    mounted = []

    def make(size: str, read_only: bool = False) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(where)], capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not root'}): "
                        "full and read-only disk cases need root")
        mounted.append(where)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def popen_cli(*args, log: Path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "dnadiff", *map(str, args)], env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def edit_json(path: Path, change) -> Path:
    """Apply ``change`` (a function that edits the object in place) to the JSON file ``path``."""
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))
    return path
