"""The reliability suite, config and sampling part: bounds, contradictions and hostile configs
refused when the config is checked (``dnadiff config``, ``snakemake -n``), with one line and no
leftovers; see ``hostile_kit.py`` for the checks and ``test_hostile.py`` for the rest."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch
from hostile_kit import assert_ok, assert_rejected, cfg, genome_records, hostile, listing

from dnadiff.checkpoint import save_checkpoint
from dnadiff.config import validate_config
from dnadiff.errors import DnadiffError
from dnadiff.generation import check_memory, sampling_memory
from dnadiff.models import build_backbone
from dnadiff.tokenizers import DNATokenizer

from conftest import REPO, random_dna, run_cli, write_fasta


def config_cli(tmp_path, text: str):
    """``dnadiff config`` on a JSON config (the fast check every verb runs first)."""
    return run_cli("config", "--config-json", text, "--out", tmp_path / "full.yaml")


def refused_config(tmp_path, text: str, *needles) -> str:
    before = listing(tmp_path)
    return assert_rejected(config_cli(tmp_path, text), before, [tmp_path], "--config-json",
                           *needles)


def sample_args(checkpoint, out, config=None):
    return ["sample", "--config-json", config or cfg(), "--checkpoint", checkpoint, "--out",
            out]


def tiny_checkpoint(path, objective="mdlm", **config):
    """A checkpoint with random weights of ``objective`` (fast: no training)."""
    full = validate_config(json.loads(cfg(objective=objective, **config)))
    torch.manual_seed(0)
    tok = DNATokenizer()
    model = build_backbone(full["model"], tok.vocab_size, causal=objective == "ar")
    save_checkpoint(path, model, full, tok, step=3)
    return path


# ------------------------------------------------------- 7. unbounded sample length
@hostile("rejected")
def test_sample_length_beyond_the_schema_bound_names_the_memory(tmp_path):
    line = refused_config(tmp_path, cfg(sample={"length": 10**12}), "sample.length",
                          "maximum of 100000000")
    assert "17 bytes of memory per position" in line


@hostile("rejected")
def test_sample_batch_that_cannot_fit_memory_is_refused_before_sampling(world, tmp_path):
    # 1000 samples of 10^8 positions at once: 1.7 TB at least, on any machine
    text = cfg(sample={"length": 10**8, "num_samples": 1000, "batch_size": 1000})
    before = listing(tmp_path)
    t0 = time.time()
    line = assert_rejected(run_cli(*sample_args(world["model"], tmp_path / "s.fa", text)),
                           before, [tmp_path], "sample.batch_size", "sample.length",
                           "TB of memory", "this machine")
    assert "1000 sample(s) of 100000000 positions" in line
    assert time.time() - t0 < 120  # refused, not swapped to death


@hostile("accepted")
def test_sampling_memory_estimate_and_its_refusal(monkeypatch):
    # token ids, their copy and a mask per position, plus one block's probabilities
    assert sampling_memory(2, 1000, 32, 6) == 2 * (1000 * 17 + 32 * 6 * 12)
    import dnadiff.generation as generation
    monkeypatch.setattr(generation, "machine_memory", lambda: 10**6)
    check_memory(1, 10_000, 32, 6)  # 0.17 MB: fits
    with pytest.raises(DnadiffError, match="sample.batch_size") as ei:
        check_memory(100, 10_000, 32, 6)  # 17 MB: does not
    assert "at least 17.2 MB of memory, more than this machine's 1 MB" in str(ei.value)
    monkeypatch.setattr(generation, "machine_memory", lambda: None)
    check_memory(100, 10**8, 32, 6)  # unknown memory: never refused on a guess


# ------------------------------------------------------- 8. seeds outside 0..2^32-1
SEED_KEYS = [("train", "seed"), ("sample", "seed"), ("evaluate", "seed"), ("probe", "seed"),
             ("marginal_trap", "seed")]


@hostile("rejected")
@pytest.mark.parametrize("value", [-1, 2**32, 2**70])
@pytest.mark.parametrize("section,key", SEED_KEYS)
def test_seed_out_of_range(section, key, value):
    with pytest.raises(DnadiffError, match=f"key '{section}.{key}'") as ei:
        validate_config({"run": "x", section: {key: value}})
    assert ("minimum of 0" if value < 0 else "seeds are 32-bit") in str(ei.value)


@hostile("rejected")
@pytest.mark.parametrize("value", [-1, 2**32, 2**70])
def test_seed_out_of_range_through_the_cli(tmp_path, value):
    refused_config(tmp_path, cfg(train={"seed": value}), "train.seed")


@hostile("rejected")
def test_downstream_seeds_out_of_range(tmp_path):
    refused_config(tmp_path, cfg(downstream={"finetune": {"seeds": [0, 2**32]}}),
                   "downstream.finetune.seeds.1", "32-bit")
    task = {"name": "g", "type": "gue", "path": "x", "seed": -1}
    refused_config(tmp_path, cfg(downstream={"tasks": [task]}), "downstream.tasks.0.seed")


@hostile("accepted")
def test_every_seed_key_of_the_schema_is_bounded():
    from dnadiff.schema import load_schema

    found = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                if key in ("seed", "seeds"):
                    leaf = sub["items"] if key == "seeds" else sub
                    assert (leaf["minimum"], leaf["maximum"]) == (0, 2**32 - 1), path + key
                    found.append(path + key)
                walk(sub, f"{path}{key}.")
            walk(node.get("items"), path)

    walk(load_schema(), "")
    assert len(found) == 9, found


@hostile("accepted")
def test_largest_seed_is_accepted(tmp_path):
    assert_ok(config_cli(tmp_path, cfg(train={"seed": 2**32 - 1}, sample={"seed": 0})))
    assert "seed: 4294967295" in (tmp_path / "full.yaml").read_text()


# ------------------------------------------------------- 9. deep nesting
@hostile("rejected")
def test_deeply_nested_config_json(tmp_path):
    refused_config(tmp_path, "[" * 30000, "nested more than 32 levels")


@hostile("rejected")
def test_nested_config_json_that_parses(tmp_path):
    text = '{"run": "x", "data": ' + "[" * 500 + "]" * 500 + "}"
    refused_config(tmp_path, text, "nested more than 32 levels")


@hostile("rejected")
@pytest.mark.parametrize("shape", ["flow", "block"])
def test_deeply_nested_yaml_config(tmp_path, shape):
    conf = tmp_path / "deep.yaml"
    if shape == "flow":
        conf.write_text("run: x\ndata: " + "[" * 5000 + "]" * 5000 + "\n")
    else:
        conf.write_text("run: x\n" + "".join("  " * i + f"k{i}:\n" for i in range(5000))
                        + "  " * 5000 + "v\n")
    before = listing(tmp_path)
    assert_rejected(run_cli("config", "--config", conf, "--out", tmp_path / "full.yaml"),
                    before, [tmp_path], conf, "nested more than 32 levels")


# ------------------------------------------------------- 12. time power with discrete T
@hostile("rejected")
def test_time_power_with_discrete_training_is_refused_at_config_check(tmp_path):
    refused_config(tmp_path, cfg(diffusion={"train_discrete_T": 8, "train_time_power": 2}),
                   "diffusion.train_discrete_T", "diffusion.train_time_power",
                   "continuous time only")


@hostile("rejected")
@pytest.mark.parametrize("rates, needles", [
    ([0.8, 0.3], ("diffusion.train_mask_range", "[0.8, 0.3]", "smaller than the highest")),
    ([0.5, 0.5], ("diffusion.train_mask_range", "smaller than the highest")),
    ([0.3, 1.5], ("train_mask_range",)),
])
def test_train_mask_range_out_of_order_or_range_is_refused(tmp_path, rates, needles):
    refused_config(tmp_path, cfg(diffusion={"train_mask_range": rates}), *needles)


@hostile("rejected")
def test_train_mask_range_with_discrete_training_is_refused(tmp_path):
    refused_config(tmp_path, cfg(diffusion={"train_discrete_T": 8,
                                            "train_mask_range": [0.3, 0.8]}),
                   "diffusion.train_discrete_T", "diffusion.train_mask_range",
                   "continuous time only")


@hostile("rejected")
@pytest.mark.parametrize("other, needle", [
    ({"schedule": "cosine"}, "diffusion.schedule' (cosine)"),
    ({"train_discrete_T": 8}, "diffusion.train_discrete_T' (8)"),
    ({"train_mask_range": [0.3, 0.8]}, "diffusion.train_mask_range' ([0.3, 0.8])"),
])
def test_complementary_masks_with_a_clashing_key_are_refused(tmp_path, other, needle):
    refused_config(tmp_path, cfg(diffusion={"train_complementary_masks": True, **other}),
                   "diffusion.train_complementary_masks", needle, "loglinear schedule")


@hostile("rejected")
def test_layer_conv_with_block_diffusion_or_even_is_refused(tmp_path):
    refused_config(tmp_path, cfg(model={"layer_conv": 5}, diffusion={"block_size": 4}),
                   "diffusion.block_size", "model.layer_conv", "whole windows only")
    refused_config(tmp_path, cfg(model={"layer_conv": 8}), "model.layer_conv", "must be odd")


@hostile("rejected")
def test_snakemake_dry_run_refuses_time_power_with_discrete_training(tmp_path):
    conf = tmp_path / "pair.yaml"
    conf.write_text("run: h\ndiffusion:\n  train_discrete_T: 8\n  train_time_power: 2\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s",
                           str(REPO / "workflow" / "Snakefile"), "-n", "--configfile",
                           str(conf), "-d", str(tmp_path / "wd")], cwd=REPO,
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "diffusion.train_time_power" in out and "continuous time only" in out


@hostile("rejected")
@pytest.mark.parametrize("verb", ["sample", "evaluate"])
def test_checkpoint_holding_time_power_and_discrete_T(world, tmp_path, verb):
    ckpt = torch.load(world["model"], map_location="cpu", weights_only=True)
    ckpt["config"]["diffusion"].update(train_discrete_T=8, train_time_power=2.0)
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    out = tmp_path / "out"
    out.mkdir()
    before = listing(tmp_path)
    if verb == "sample":
        proc = run_cli(*sample_args(bad, out / "s.fa"))
    else:
        proc = run_cli("evaluate", "likelihood", "--config-json", cfg(), "--checkpoint", bad,
                       "--data", world["data"], "--out-json", out / "l.json", "--out-tsv",
                       out / "l.tsv")
    assert_rejected(proc, before, [tmp_path], bad, "train_time_power", "train_discrete_T")


# ------------------------------------------------------- 13. time power without bound
@hostile("rejected")
@pytest.mark.parametrize("power", [11, 200, 1e308])
def test_time_power_beyond_ten(tmp_path, power):
    refused_config(tmp_path, cfg(diffusion={"train_time_power": power}),
                   "diffusion.train_time_power", "maximum of 10", "trains on nothing")


@hostile("accepted")
def test_time_power_ten_trains(world, tmp_path):
    out = tmp_path / "run"
    text = cfg(diffusion={"train_time_power": 10})
    assert_ok(run_cli("train", "--config-json", text, "--data", world["data"], "--checkpoint",
                      out / "model.pt", "--metrics", out / "metrics.csv", "--workdir",
                      out / "state"))
    rows = (out / "metrics.csv").read_text().splitlines()
    head = rows[0].split(",")
    col = next(i for i, c in enumerate(head) if "train" in c and "bits" in c)
    assert any(float(r.split(",")[col]) > 0 for r in rows[1:] if r.split(",")[col])


# ------------------------------------------------------- 19. confidence sampler options
@hostile("rejected")
@pytest.mark.parametrize("options", [{"k": 2, "threshold": 0.5},
                                     {"k": 2, "entropy_bound": 1.0},
                                     {"threshold": 0.5, "entropy_bound": 1.0}])
def test_confidence_sampler_takes_one_rule(tmp_path, options):
    keys = [f"sample.{k}" for k in options]
    refused_config(tmp_path, cfg(sample={"sampler": "confidence", **options}), *keys,
                   "one of them")


@hostile("accepted")
def test_confidence_threshold_alone_is_recorded(world, tmp_path):
    out = tmp_path / "s.fa"
    text = cfg(sample={"sampler": "confidence", "threshold": 0.5})
    assert_ok(run_cli(*sample_args(world["model"], out, text)))
    headers = [ln for ln in out.read_text().splitlines() if ln.startswith(">")]
    assert len(headers) == 2
    assert all("threshold=0.5" in h and "k=auto" in h and "entropy_bound=auto" in h
               for h in headers)


# ------------------------------------------------------- 20. remdm loop that never loops
@hostile("rejected")
@pytest.mark.parametrize("t_on,t_off", [(0.1, 0.5), (0.3, 0.3)])
def test_remdm_loop_off_before_on(tmp_path, t_on, t_off):
    refused_config(tmp_path, cfg(sample={"sampler": "remdm", "remdm_schedule": "loop",
                                         "remdm_t_on": t_on, "remdm_t_off": t_off}),
                   "sample.remdm_t_on", "sample.remdm_t_off", "nothing is ever remasked")


# ------------------------------------------------------- 21. AR checkpoint and a suffix
@hostile("rejected")
@pytest.mark.parametrize("sample", [{"prefix": "ACG", "suffix": "TTT"},
                                    {"template": "ACG----TT" + "-" * 20}])
def test_ar_checkpoint_cannot_condition_on_what_follows(tmp_path, sample):
    ckpt = tiny_checkpoint(tmp_path / "ar.pt", "ar")
    out = tmp_path / "out"
    out.mkdir()
    before = listing(tmp_path)
    text = cfg(sample={"sampler": "autoregressive", **sample})
    key = "sample.suffix" if "suffix" in sample else "sample.template"
    assert_rejected(run_cli(*sample_args(ckpt, out / "s.fa", text)), before, [tmp_path], key,
                    "autoregressive", "cannot condition on what comes after")


@hostile("accepted")
@pytest.mark.parametrize("sample", [{"prefix": "ACGTA"}, {"template": "ACGT" + "-" * 20}])
def test_ar_checkpoint_with_a_prefix(tmp_path, sample):
    ckpt = tiny_checkpoint(tmp_path / "ar.pt", "ar")
    out = tmp_path / "s.fa"
    assert_ok(run_cli(*sample_args(ckpt, out, cfg(sample={"sampler": "autoregressive",
                                                          **sample}))))
    seqs = [ln for ln in out.read_text().splitlines() if not ln.startswith(">")]
    assert len(seqs) == 2 and all(s.startswith(sample.get("prefix", "ACGT")) for s in seqs)


# ------------------------------------------------------- 25. hangs
@hostile("rejected")
@pytest.mark.parametrize("pattern", ["^(a+)+$", "(a|ab)*c", "(a?){30}a{30}", r"(a)\1",
                                     "(.*){20}x"])
def test_catastrophic_exclude_pattern_refused_at_config_check(tmp_path, pattern):
    line = refused_config(tmp_path, cfg(data={"exclude": [pattern]}), "data.exclude",
                          "exponential time")
    assert repr(pattern) in line


@hostile("rejected")
def test_catastrophic_exclude_pattern_refused_by_prepare(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", [("a" * 40 + "!", random_dna(3000, 1))]
                     + genome_records()[1:])
    before = listing(tmp_path)
    t0 = time.time()
    assert_rejected(run_cli("prepare", "--config-json", cfg(data={"exclude": ["^(a+)+$"]}),
                            "--fasta", fa, "--outdir", tmp_path / "data"),
                    before, [tmp_path], "data.exclude", "(a+)+")
    assert time.time() - t0 < 60


@hostile("rejected")
def test_slow_exclude_pattern_is_stopped_in_time(tmp_path):
    # no nesting (so the config check passes) but 12 quantifiers in a row: polynomial of
    # degree 12 in the name's length; matching is bounded to 2 s per name
    name = "a" * 41
    pattern = "a*" * 12 + "b"
    validate_config({"run": "x", "data": {"exclude": [pattern]}})
    fa = write_fasta(tmp_path / "g.fa", [(name, random_dna(3000, 1))] + genome_records()[1:])
    before = listing(tmp_path)
    t0 = time.time()
    line = assert_rejected(run_cli("prepare", "--config-json", cfg(data={"exclude": [pattern]}),
                                   "--fasta", fa, "--outdir", tmp_path / "data"),
                           before, [tmp_path], "data.exclude", "took more than 2 s", name)
    assert repr(pattern) in line
    assert time.time() - t0 < 60


@hostile("accepted")
def test_ordinary_exclude_patterns_still_exclude(world, tmp_path):
    patterns = ["_alt$", "^chrUn_", "(_fix|_random)$", "(chr)?b$", "^[ab]+_x$"]
    for pattern in patterns:
        validate_config({"run": "x", "data": {"exclude": [pattern]}})
    out = tmp_path / "data"
    assert_ok(run_cli("prepare", "--config-json", cfg(data={"exclude": patterns}), "--fasta",
                      world["fasta"], "--outdir", out))
    index = json.loads((out / "index.json").read_text())
    assert index["excluded_contigs"] == ["b"]


@hostile("rejected")
def test_yaml_billion_laughs(tmp_path):
    conf = tmp_path / "lol.yaml"
    lines = ["run: x", 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    conf.write_text("\n".join(lines) + "\n")
    before = listing(tmp_path)
    t0 = time.time()
    assert_rejected(run_cli("config", "--config", conf, "--out", tmp_path / "full.yaml"),
                    before, [tmp_path], conf, "line 3", "aliases")
    assert time.time() - t0 < 60


@hostile("rejected")
def test_yaml_merge_key_alias(tmp_path):
    conf = tmp_path / "merge.yaml"
    conf.write_text("run: x\nbase: &base {steps: 5}\ntrain:\n  <<: *base\n")
    before = listing(tmp_path)
    assert_rejected(run_cli("config", "--config", conf, "--out", tmp_path / "full.yaml"),
                    before, [tmp_path], conf, "line 4", "aliases")


# ------------------------------------------------------- 26. keys of another task type
@hostile("rejected")
@pytest.mark.parametrize("extra", [{"reference": "ref.fa"}, {"kind": "coding"},
                                   {"positive": "p.fa"}])
def test_task_with_another_types_key(tmp_path, extra):
    task = {"name": "g", "type": "gue", "path": "x", **extra}
    key = next(iter(extra))
    refused_config(tmp_path, cfg(downstream={"tasks": [task]}), f"downstream.tasks.0.{key}",
                   f"a gue task has no '{key}'")


@hostile("accepted")
def test_filled_in_config_with_tasks_round_trips(tmp_path):
    """A filled-in config (``dnadiff config --out``, Snakemake's) writes every key's default
    into every task: those are not refused."""
    tasks = [{"name": "g", "type": "gue", "path": "x"},
             {"name": "c", "type": "coordinates", "path": "y", "reference": "r.fa"}]
    assert_ok(config_cli(tmp_path, cfg(downstream={"tasks": tasks})))
    full = tmp_path / "full.yaml"
    assert "reference: null" in full.read_text()  # the gue task's, filled in
    assert_ok(run_cli("config", "--config", full, "--out", tmp_path / "again.yaml"))
    assert (tmp_path / "again.yaml").read_text() == full.read_text()
