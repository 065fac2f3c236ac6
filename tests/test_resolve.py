"""Config resolution (``dnadiff.resolve``): the schema is the only copy of every default, old
key spellings are accepted with one deprecation warning, and every null-means-computed key is
filled in one step."""

import logging
import re
from pathlib import Path

import pytest

from dnadiff.config import load_config, validate_config
from dnadiff.diffusion import build_objective
from dnadiff.resolve import COMPUTED, resolve, resolve_section
from dnadiff.schema import defaults, load_schema
from dnadiff.tokenizers import DNATokenizer

PACKAGE = Path(__file__).resolve().parent.parent / "dnadiff"
CODE = {p: p.read_text() for p in PACKAGE.rglob("*.py")}

#: defaults that used to be written in code as well as in the schema (pattern, where it was)
REMOVED = [
    (r"0\.008", "ReMDM-cap's eta (sample.remdm_eta's x-remdm-eta)"),
    (r"remdm_t_on: float = |remdm_t_off: float = |remdm_alpha_on: float = ",
     "the ReMDM loop defaults (sample.remdm_t_on/t_off/alpha_on)"),
    (r"\"loop\": 0\.02", "ReMDM-loop's eta"),
    (r"train_time_power\"?\]?\.get\(|get\(\"train_time_power\"",
     "diffusion.train_time_power (filled by validation, also for an old checkpoint's config)"),
    (r"split_validation\([^)]*0\.1\b", "conditional.validation_fraction"),
    (r"max_k: int = \d", "evaluate.kmer_max_k"),
    (r"def discriminator_auroc\([^)]*k: int = \d", "evaluate.discriminator_k"),
    (r"eps: float = 1e-3", "diffusion.eps"),
    (r"or window\b|or min\(128", "the computed keys (dnadiff.resolve.COMPUTED)"),
]


@pytest.mark.parametrize("pattern,what", REMOVED)
def test_the_schema_is_the_only_copy_of_a_default(pattern, what):
    found = [f"{p.relative_to(PACKAGE)}:{text[:m.start()].count(chr(10)) + 1}"
             for p, text in CODE.items() for m in re.finditer(pattern, text)]
    assert not found, f"{what} is written in code again: {found}"


def test_the_sampler_grid_end_is_written_once():
    """t_min (the samplers' last grid time) is a constant of the grid, not a setting: one
    copy, ``T_MIN`` in ``diffusion/samplers/common.py`` (the other 1e-5s are unrelated: a
    point of the k-mer baseline's C grid and Mamba's RMSNorm epsilon)."""
    other = {"downstream/baselines.py", "models/mamba.py"}
    found = [str(p.relative_to(PACKAGE)) for p, text in CODE.items()
             for _ in re.finditer(r"\b1e-0?5\b", text)
             if str(p.relative_to(PACKAGE)) not in other]
    assert found == ["diffusion/samplers/common.py"]


def computed_in_schema() -> set:
    props = load_schema()["properties"]
    return {(sec, key) for sec, node in props.items()
            for key, sub in node.get("properties", {}).items() if "x-computed" in sub}


def test_every_computed_key_of_the_schema_is_resolved_and_only_those():
    assert set(COMPUTED) == computed_in_schema()
    for sec, key in COMPUTED:
        assert defaults(sec)[key] is None, f"{sec}.{key}: a computed key's default is null"


@pytest.mark.parametrize("window", [16, 64, 1024])
def test_resolution_fills_every_computed_key(window):
    cfg = validate_config({"run": "t", "data": {"window": window}})
    out = resolve(cfg)
    assert all(out[sec][key] is not None for sec, key in COMPUTED)
    assert out["sample"]["length"] == out["marginal_trap"]["length"] == window
    assert out["conditional"]["sampling_steps"] == window
    assert out["sample"]["semi_ar_stride"] == window // 2
    assert out["probe"]["masks"] == min(128, window // 2)
    assert out["probe"]["prompt_length"] == window - out["probe"]["masks"]
    assert out["sample"]["remdm_eta"] == 0.008
    assert cfg["sample"]["length"] is None  # a copy: the validated config keeps its nulls
    loop = resolve_section("sample", {"remdm_schedule": "loop"})
    assert loop["remdm_eta"] == 0.02 and loop["length"] is None  # no window: left null
    given = resolve(validate_config({"run": "t", "sample": {"length": 7, "remdm_eta": 0.1}}))
    assert given["sample"]["length"] == 7 and given["sample"]["remdm_eta"] == 0.1


def test_an_old_checkpoint_config_without_train_time_power_builds():
    cfg = validate_config({"run": "t"})
    del cfg["diffusion"]["train_time_power"]
    obj = build_objective(validate_config(cfg), DNATokenizer())
    assert obj.train_time_power == defaults("diffusion")["train_time_power"]


#: (old spelling, new spelling, the key the warning names)
OLD = [
    ({"downstream": {"finetune": {"eval_every": 7}}},
     {"downstream": {"finetune": {"val_every": 7}}}, "downstream.finetune.eval_every"),
    ({"downstream": {"finetune": {"eval_every": "epoch"}}},
     {"downstream": {"finetune": {"val_every": "epoch"}}}, "downstream.finetune.eval_every"),
    ({"downstream": {"finetune": {"rc_augment": True}}},
     {"downstream": {"finetune": {"rc_augment": 0.5}}}, "downstream.finetune.rc_augment"),
    ({"downstream": {"finetune": {"rc_augment": False}}},
     {"downstream": {"finetune": {"rc_augment": 0.0}}}, "downstream.finetune.rc_augment"),
]


@pytest.mark.parametrize("old,new,key", OLD)
def test_an_old_spelling_warns_once_and_resolves_as_the_new(tmp_path, caplog, old, new, key):
    import yaml
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"run": "t", **old}))
    with caplog.at_level(logging.WARNING, logger="dnadiff"):
        got = load_config(path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert str(path) in warnings[0] and repr(key) in warnings[0]
    assert "deprecated" in warnings[0] and "\n" not in warnings[0]
    new_value = next(iter(new["downstream"]["finetune"].items()))
    assert re.search(re.escape(repr(new_value[1])) + "|" + new_value[0], warnings[0])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dnadiff"):
        assert got == load_config(None, __import__("json").dumps({"run": "t", **new}))
    assert not caplog.records  # the new spelling: no warning


def test_the_old_key_wins_over_a_filled_in_default():
    """Snakemake validates against the same schema first, filling the new key's default beside
    the old key the user wrote: the user's value is kept."""
    filled = {"run": "t", "downstream": {"finetune": {"eval_every": 7, "val_every": 50}}}
    assert validate_config(filled)["downstream"]["finetune"]["val_every"] == 7
    assert "eval_every" not in validate_config(filled)["downstream"]["finetune"]


def test_the_cli_logs_one_deprecation_line(tmp_path, capsys):
    import subprocess
    import sys
    proc = subprocess.run(
        [sys.executable, "-m", "dnadiff", "config", "--config-json",
         '{"run": "t", "downstream": {"finetune": {"eval_every": 9}}}'],
        capture_output=True, text=True, cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "deprecated" in ln]
    assert len(lines) == 1 and "--config-json" in lines[0] and "val_every" in lines[0]
    assert "val_every: 9" in proc.stdout and "eval_every" not in proc.stdout


def test_snakemake_accepts_an_old_spelling(tmp_path):
    """Snakemake validates the config against the same schema (which keeps the old key, marked
    deprecated) before dnadiff's own checks map it to the new one."""
    import shutil
    import subprocess
    import sys
    root = PACKAGE.parent
    shutil.copytree(root / "config", tmp_path / "config")
    cfg = tmp_path / "config" / "config.yaml"
    text = cfg.read_text()
    assert "val_every: 20" in text
    cfg.write_text(text.replace("val_every: 20", "eval_every: 20, rc_augment: true"))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s",
                           str(root / "workflow" / "Snakefile"), "-d", str(tmp_path), "-n",
                           "--quiet", "rules"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "'downstream.finetune.eval_every' is deprecated" in out
    assert "'downstream.finetune.rc_augment': True is deprecated" in out
    assert "train" in proc.stdout
