"""The shape of the house (ARCHITECTURE.md): the import graph of ``dnadiff`` has no cycle and no
module imports from a stage above its own; no file grows past ~400 lines; the command line
dispatches without an if/elif over verbs; the DNA alphabet lives in the tokenizers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dnadiff"

#: the stages, lowest first: a module may import its own stage and those below it
LAYERS = [
    ("dnadiff.errors", "dnadiff.schema"),
    ("dnadiff.ownership",),
    ("dnadiff.io", "dnadiff.runtime", "dnadiff.tokenizers", "dnadiff.models.registry"),
    ("dnadiff.config", "dnadiff.resolve", "dnadiff.patterns"),
    ("dnadiff.models",),
    ("dnadiff.data",),
    ("dnadiff.diffusion",),
    ("dnadiff.checkpoint", "dnadiff.export"),
    ("dnadiff.training",),
    ("dnadiff.generation",),
    ("dnadiff.tasks",),
    ("dnadiff.evaluation",),
    ("dnadiff.downstream",),
    ("dnadiff.conditional",),
    ("dnadiff.perf",),
    ("dnadiff.report",),
    ("dnadiff.api",),
    ("dnadiff.cli", "dnadiff.__main__"),
]
#: the package itself (``dnadiff/__init__.py``): it re-exports the API, so it sits on top
ROOT = "dnadiff"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    if module == ROOT:
        return len(LAYERS) - 1
    best, found = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), i
    assert found is not None, f"{module} is in no layer of tests/test_architecture.py"
    return found


def imports(path: Path) -> set[str]:
    """dnadiff modules imported anywhere in ``path`` (module level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("dnadiff")}
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("dnadiff"):
            # "from dnadiff import io" imports the module dnadiff.io
            subs = {f"{node.module}.{a.name}" for a in node.names}
            known = {module_name(p) for p in PACKAGE.rglob("*.py")}
            out |= {s for s in subs if s in known} or {node.module}
    return out


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_from_a_stage_above_its_own():
    upward = [f"{m} (stage {layer(m)}) imports {dep} (stage {layer(dep)})"
              for m, deps in GRAPH.items() for dep in sorted(deps)
              if dep != "dnadiff" and layer(dep) > layer(m)]
    assert upward == []


def test_conditional_imports_nothing_from_downstream():
    """The class-conditional model reads its task through ``tasks/`` (spec, validation split);
    it shares no code with the downstream benchmarks, only their oracle checkpoint."""
    assert [dep for dep in GRAPH["dnadiff.conditional"]
            if dep == "dnadiff.downstream" or dep.startswith("dnadiff.downstream.")] == []


def test_no_import_cycle():
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for dep in GRAPH.get(m, ()):
            if dep not in GRAPH or dep == "dnadiff":
                continue
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[m] = 2

    for m in GRAPH:
        if m not in state:
            visit(m, [m])
    assert cycles == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(
    p.relative_to(PACKAGE)))
def test_no_file_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 420


def test_cli_dispatches_without_an_if_chain_over_verbs():
    for path in (PACKAGE / "cli").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"args\.(verb|what)\s*==", text), path


def test_the_dna_alphabet_lives_in_the_tokenizers():
    leaks = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "tokenizers.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"\bACGT\s*=|PAD_ID\s*=\s*\d|\bisin\([^)]*\(1,\s*2\)|randint\(0,\s*4",
                         code):
                leaks.append(f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}")
    assert leaks == []


def test_the_schema_sampler_enums_are_the_registry():
    """Every sampler enum of the schema names the registry's samplers: ``sample.sampler`` all of
    them (null: the objective's own), ``marginal_trap.samplers`` those of MDLM models."""
    from dnadiff.diffusion.samplers import SAMPLERS
    from dnadiff.schema import load_schema

    props = load_schema()["properties"]
    sample_enum = props["sample"]["properties"]["sampler"]["enum"]
    assert sample_enum == [None, *SAMPLERS]
    trap_enum = props["marginal_trap"]["properties"]["samplers"]["items"]["enum"]
    assert trap_enum == [n for n, s in SAMPLERS.items() if "mdlm" in s.objectives]


def test_the_schema_task_types_are_the_registry():
    """The schema's task-type enum, its per-type key table and the readers name the same types:
    a task reader is one module, one line in ``tasks/registry.py`` and its schema entries."""
    from dnadiff.schema import load_schema
    from dnadiff.tasks.registry import _READ, READERS

    task = load_schema()["properties"]["downstream"]["properties"]["tasks"]["items"]
    assert task["properties"]["type"]["enum"] == list(task["x-keys-by-type"])
    assert list(READERS) == list(task["x-keys-by-type"]) == list(_READ)
