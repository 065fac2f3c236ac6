"""`dnadiff bench sampler`: well-formed figures (not timings)."""

import json
import subprocess
import sys

import pytest

TINY = '{"run": "b", "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16}}'


def test_bench_sampler_json():
    out = subprocess.run(
        [sys.executable, "-m", "dnadiff", "bench", "sampler", "--config-json", TINY,
         "--length", "24", "--steps", "96", "--threads", "1"],
        capture_output=True, text=True, check=True).stdout
    res = json.loads(out)
    assert res["identical_sequences"] is True  # caching never changes the output
    assert 1 <= res["cached_forward_passes"] < res["uncached_forward_passes"] <= 96
    assert res["pass_ratio"] == round(res["uncached_forward_passes"]
                                      / res["cached_forward_passes"], 3)
    assert res["uncached_seconds"] >= 0 and res["cached_seconds"] >= 0
    assert (res["length"], res["steps"], res["batch"]) == (24, 96, 1)


def test_bench_backbones_json():
    cfg = ('{"run": "b", "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 8, '
           '"headdim": 8}}')
    out = subprocess.run(
        [sys.executable, "-m", "dnadiff", "bench", "backbones", "--config-json", cfg,
         "--length", "32", "--batch", "2", "--reps", "2", "--threads", "1"],
        capture_output=True, text=True, check=True).stdout
    res = json.loads(out)
    rows = res["backbones"]
    assert [r["backbone"] for r in rows] == ["dit", "mamba:mamba1", "caduceus:mamba1",
                                             "caduceus:mamba2"]
    assert rows[0]["ratio_to_first"] == 1.0 and rows[0]["scan_impl"] is None
    for r in rows:
        assert r["min_seconds"] <= r["seconds_per_step"] <= r["max_seconds"]
        assert r["tokens_per_second"] == pytest.approx(64 / r["seconds_per_step"], rel=0.01)
        assert r["ratio_to_first"] == pytest.approx(
            r["seconds_per_step"] / rows[0]["seconds_per_step"], rel=0.01)
    assert {r["scan_impl"] for r in rows[1:]} == {"torch"}  # no mamba-ssm on CPU
    # caduceus at the same width shares parameters across strands: fewer than mamba
    assert rows[2]["parameters"] < rows[1]["parameters"]


def test_bench_backbones_bad_spec():
    proc = subprocess.run(
        [sys.executable, "-m", "dnadiff", "bench", "backbones", "--config-json", '{"run": "b"}',
         "--backbones", "dit,hyena"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown backbone 'hyena'" in proc.stderr
