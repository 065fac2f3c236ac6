"""Shared fixtures and helpers for the dnadiff unit tests.

Everything here is small and offline. Real data (``../shared/data``) is only used through the
``shared_data`` fixture, which skips when the folder is absent.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# The unit tests use tiny tensors: intra-op threading only adds overhead (with 2 threads a
# 2 x 24 x 16 DiT forward pass takes ~100 ms instead of ~1 ms on a 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real genomes); the test is skipped when it is not there."""
    path = SHARED_DATA
    if not path.is_dir():
        pytest.skip(f"../shared/data not present: {path} does not exist "
                    "(real-data tests need the shared data folder next to the repository)")
    return path


@pytest.fixture(scope="session")
def tok():
    from dnadiff.tokenizers import DNATokenizer

    return DNATokenizer()


def read_fasta(path: Path) -> list[list[str]]:
    """``[[header without '>', sequence], ...]`` of a FASTA file (wrapped lines joined)."""
    recs: list[list[str]] = []
    for line in Path(path).read_text().splitlines():
        if line.startswith(">"):
            recs.append([line[1:], ""])
        else:
            recs[-1][1] += line
    return recs


def write_fasta(path: Path, records, width: int = 60, gz: bool = False) -> Path:
    """Write ``[(name, seq), ...]`` as FASTA (wrapped at ``width``), optionally gzip."""
    lines = []
    for name, seq in records:
        lines.append(f">{name}\n")
        for i in range(0, len(seq), width):
            lines.append(seq[i:i + width] + "\n")
    data = "".join(lines).encode()
    path = Path(path)
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def random_dna(n: int, seed: int = 0, p=None) -> str:
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list("ACGT"), size=n, p=p))


def run_cli(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run ``python -m dnadiff ARGS`` in a subprocess (real stdout/stderr, real exit code)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "dnadiff", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or REPO, env=full_env)


class IIDTrueConditional(torch.nn.Module):
    """A fake denoiser for an i.i.d. source with base probabilities ``p`` over A, C, G, T.

    Whatever the input, every position gets logits ``log p`` on the four bases: this is the exact
    conditional p(x0_i | x_t) of an i.i.d. source, so the MDLM NELBO must equal the entropy H(p).
    """

    def __init__(self, p, vocab_size: int = 7):
        super().__init__()
        logits = torch.zeros(vocab_size, dtype=torch.float32)
        logits[:4] = torch.log(torch.as_tensor(p, dtype=torch.float32))
        logits[4:] = 5.0  # large on N/[MASK]/[PAD]: SUBS must remove it
        self.register_buffer("logits", logits)

    def forward(self, tokens, sigma=None, cond=None):
        return self.logits.expand(tokens.shape[0], tokens.shape[1], -1).clone()


def entropy_nats(p) -> float:
    p = np.asarray(p, dtype=np.float64)
    return float(-(p * np.log(p)).sum())


# ---- the reliability suite's table (tests/test_hostile*.py) ---------------------------------
_HOSTILE = {"tried": 0, "rejected cleanly": 0, "accepted correctly": 0, "wrong": 0,
            "partial outputs left": 0, "skipped": 0}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("hostile")
    if marker is None or report.when not in ("setup", "call"):
        return
    if report.when == "setup" and not report.skipped and not report.failed:
        return  # counted when the case has run
    _HOSTILE["tried"] += 1
    if report.skipped:
        _HOSTILE["skipped"] += 1
    elif report.passed:
        kind = marker.args[0]
        _HOSTILE["rejected cleanly" if kind == "rejected" else "accepted correctly"] += 1
    else:
        leftover = call.excinfo is not None and call.excinfo.typename == "LeftoverError"
        _HOSTILE["partial outputs left" if leftover else "wrong"] += 1


def pytest_terminal_summary(terminalreporter):
    if not _HOSTILE["tried"]:
        return
    terminalreporter.section("reliability suite (tests/test_hostile*.py)")
    terminalreporter.write_line(" | ".join(_HOSTILE))
    terminalreporter.write_line(" | ".join(str(v) for v in _HOSTILE.values()))


def outside_checkout(workdir) -> Path:
    """``workdir``, checked to lie outside the checkout: after `make run` the checkout holds a
    finished ``results/`` (and ``.snakemake/``), and a dry run there would plan nothing."""
    workdir = Path(workdir).resolve()
    assert not workdir.is_relative_to(REPO.resolve()), (
        f"{workdir}: a workflow test must run in a folder of its own, not in the checkout")
    return workdir


def default_workdir(folder: Path) -> Path:
    """A working directory with a copy of the repository's ``config/`` (the default config and
    the files it names), so that the workflow sees the checkout's settings but not its state."""
    shutil.copytree(REPO / "config", folder / "config")
    return folder


# the reliability suite's shared fixtures (tests/hostile_kit.py), for every tests/test_hostile*.py
from hostile_kit import small_fs, world  # noqa: E402, F401, I001
# the downstream tests' shared fixture (tests/downstream_kit.py), for tests/test_downstream*.py
from downstream_kit import pretrained  # noqa: E402, F401, I001
# the data tests' shared fixtures (tests/data_kit.py), for tests/test_data_*.py
from data_kit import genome_fa, prepared  # noqa: E402, F401, I001
# the scoring tests' shared fixture (tests/score_kit.py), for tests/test_api.py, test_score.py
from score_kit import motif_models  # noqa: E402, F401, I001
