"""Task specs (``dnadiff.tasks``): the stratified and validation splits, spec checks, the
schema's ranges, the registry against the schema, and a run's defaults in ``task_spec``."""

from __future__ import annotations

import numpy as np
import pytest

from dnadiff.config import validate_config
from dnadiff.errors import DnadiffError
from dnadiff.schema import load_schema
from dnadiff.tasks import (
    COMMON_KEYS,
    READERS,
    LabeledSet,
    load_task,
    split_validation,
    stratified_split,
    task_keys,
    task_spec,
)


def test_stratified_split_properties():
    labels = np.array([0] * 53 + [1] * 31 + [2] * 7)
    np.random.default_rng(0).shuffle(labels)
    fr = [0.8, 0.1, 0.1]
    parts = stratified_split(labels, fr, seed=3)
    assert len(parts) == 3
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(len(labels)))       # disjoint and covering
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)
    for c in (0, 1, 2):
        n_c = int((labels == c).sum())
        for p, f in zip(parts, fr):
            assert abs(int((labels[p] == c).sum()) - n_c * f) < 1
    again = stratified_split(labels, fr, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = stratified_split(labels, fr, seed=4)
    assert not np.array_equal(parts[1], other[1])
    # strings work too, and two parts
    tr, te = stratified_split(["a"] * 10 + ["b"] * 10, [0.5, 0.5], seed=0)
    assert len(tr) == len(te) == 10
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(labels, [0.5, -0.5, 1.0], seed=0)


def test_split_validation_is_a_stratified_seeded_fraction_of_train():
    labels = np.array([0] * 30 + [1] * 10)
    labeled = LabeledSet([np.full(3, i % 4, np.uint8) for i in range(40)], labels,
                         [f"s{i}" for i in range(40)])
    tr, va = split_validation(labeled, 0.1, seed=2)
    assert (len(tr), len(va)) == (36, 4)
    assert np.bincount(va.labels).tolist() == [3, 1]  # stratified
    assert sorted(tr.names + va.names) == sorted(labeled.names)  # disjoint and covering
    assert all(np.array_equal(labeled.seqs[labeled.names.index(n)], s)
               for n, s in zip(va.names, va.seqs))  # sequences travel with their names
    assert split_validation(labeled, 0.1, seed=2)[1].names == va.names
    assert split_validation(labeled, 0.1, seed=3)[1].names != va.names


# ---------------------------------------------------------------------------------------------
# spec checks


@pytest.mark.parametrize("spec,message", [
    ({"type": "gue", "path": "x"}, "needs a non-empty string 'name'"),
    ({"name": "t", "type": "nope"}, "unknown type 'nope'"),
    ({"name": "t", "type": "gue"}, "needs key\\(s\\) path"),
    ({"name": "t", "type": "gue", "path": "x", "pth": 1}, "unknown key\\(s\\) pth"),
    ({"name": "t", "type": "gue", "path": "x", "seed": "1"}, "seed must be an integer"),
    ({"name": "t", "type": "gue", "path": "x", "max_per_split": 0}, "max_per_split"),
    ({"name": "t", "type": "gue", "path": "x", "split_fractions": [0.5, 0.5]}, "split_fractions"),
    ({"name": "t", "type": "annotation", "fasta": "f", "annotation": "a", "kind": "x",
      "test_contigs": ["c"]}, "kind must be 'promoter' or 'coding'"),
    ({"name": "t", "type": "annotation", "fasta": "f", "annotation": "a", "kind": "coding",
      "test_contigs": "chr1"}, "test_contigs must be a list"),
])
def test_bad_specs(spec, message):
    with pytest.raises(DnadiffError, match=message):
        load_task(spec)


ANNOTATION = {"name": "t", "type": "annotation", "fasta": "f", "annotation": "a",
              "kind": "promoter", "test_contigs": ["c"]}


@pytest.mark.parametrize("spec,message", [
    ({**ANNOTATION, "length": 7}, r"length must be an integer >= 8, got 7"),
    ({"name": "t", "type": "gue", "path": "x", "max_per_split": 1},
     r"max_per_split must be an integer >= 2 or null, got 1"),
    ({"name": "t", "type": "gue", "path": "x", "split_fractions": [0.9, 0, 0.1]},
     r"split_fractions must be 3 numbers > 0 \(train, validation, test\) summing to 1"),
    ({"name": "t", "type": "gue", "path": "x", "split_fractions": [0.5, 0.3, 0.3]},
     r"split_fractions .* summing to 1"),
])
def test_spec_ranges_are_the_schemas(spec, message):
    with pytest.raises(DnadiffError, match=message):
        load_task(spec)


def test_registry_and_schema_name_the_same_types_and_keys():
    task = load_schema()["properties"]["downstream"]["properties"]["tasks"]["items"]
    props = task["properties"]
    assert props["type"]["enum"] == list(READERS)
    assert set(props) == set().union(*map(task_keys, READERS))
    assert set(task["required"]) <= set(COMMON_KEYS)
    for _, required, optional in READERS.values():
        assert not set(required) & set(optional)
        assert all("default" in props[k] for k in optional)  # defaults live in the schema


def test_task_spec_fills_the_runs_genome_and_splits():
    cfg = validate_config({"run": "t", "downstream": {"tasks": [
        {"name": "p", "type": "annotation"},
        {"name": "g", "type": "gue", "path": "x"}]}})
    spec = task_spec(cfg, "p", "genome.fa", "genes.gff3")
    assert spec["fasta"] == "genome.fa" and spec["annotation"] == "genes.gff3"
    assert spec["validation_contigs"] == ["chr15"] and spec["test_contigs"] == ["chr16"]
    assert "path" not in spec and "reference" not in spec
    g = task_spec(cfg, "g")
    assert set(g) == {"name", "type", "path", "seed", "max_per_split", "fixed_length",
                      "split_fractions"}
    with pytest.raises(DnadiffError, match="no downstream task 'q'"):
        task_spec(cfg, "q")
