"""environment.yml (conda) and pyproject.toml (pip) must name the same dependencies."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge package name -> PyPI name where they differ
CONDA_TO_PIP = {"pytorch": "torch", "pytorch-gpu": "torch", "matplotlib-base": "matplotlib",
                "snakemake-minimal": "snakemake"}
CONDA_ONLY = {"python", "pip"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower()


def test_environment_and_pyproject_name_the_same_dependencies():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {CONDA_TO_PIP.get(_name(d), _name(d)) for d in env["dependencies"]
             if isinstance(d, str)} - CONDA_ONLY
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip = {_name(d) for d in project["dependencies"]}
    pip |= {_name(d) for d in project["optional-dependencies"]["test"]}
    assert conda == pip, (f"only in environment.yml: {sorted(conda - pip)}; "
                          f"only in pyproject.toml: {sorted(pip - conda)}")


def test_workflow_env_is_the_project_environment():
    env_file = ROOT / "workflow" / "envs" / "dnadiff.yaml"
    assert env_file.resolve() == (ROOT / "environment.yml").resolve()


def test_workflow_schema_is_the_package_schema():
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    assert schema.resolve() == (ROOT / "dnadiff" / "schema" / "config.schema.yaml").resolve()


def _conda_deps(path):
    env = yaml.safe_load(path.read_text())
    return {CONDA_TO_PIP.get(_name(d), _name(d)) for d in env["dependencies"]
            if isinstance(d, str)} - CONDA_ONLY


def test_gpu_environment_is_the_project_environment_plus_the_gpu_extra():
    base = _conda_deps(ROOT / "environment.yml")
    gpu = _conda_deps(ROOT / "workflow" / "envs" / "dnadiff-gpu.yaml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = {_name(d) for d in project["optional-dependencies"]["gpu"]}
    assert extra == {"mamba-ssm"}
    assert gpu == base | extra
