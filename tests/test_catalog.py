"""The Snakemake workflow catalog's standard: its usage file, config/README.md, a .test config
that validates (``make catalog-test`` runs it whole with its report, in CI), ``rule all`` as
the default target, and the profiles' README."""

from pathlib import Path

import yaml

from dnadiff.config import validate_config

ROOT = Path(__file__).resolve().parents[1]


def test_catalog_usage_file():
    usage = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert usage["report"] is True
    assert usage["software-stack-deployment"]["conda"] is True
    assert (ROOT / "workflow" / "envs" / "dnadiff.yaml").exists()  # what conda: true builds
    assert {"desc", "flags"} <= set(usage["mandatory-flags"])


def test_catalog_layout():
    assert (ROOT / "workflow" / "Snakefile").exists()
    readme = (ROOT / "config" / "README.md").read_text()
    assert "config/config.yaml" in readme
    snakefile = (ROOT / "workflow" / "Snakefile").read_text()
    assert "rule all:\n    default_target: True" in snakefile
    assert (ROOT / "workflow" / "profiles" / "README.md").exists()


def test_test_config_validates_and_uses_only_files_in_the_repo():
    cfg = validate_config(yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text()))
    source = ROOT / ".test" / cfg["reference"]["source"]
    assert source.exists() and source.stat().st_size < 400_000
    assert cfg["downstream"]["tasks"] == [] and cfg["conditional"]["task"] is None
    assert "catalog-test" in (ROOT / ".ci" / "run").read_text()
