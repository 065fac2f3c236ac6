"""`dnadiff bench sampler`: well-formed figures (not timings)."""

import json
import subprocess
import sys

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
