"""Cluster runs: SLURM profiles (dry runs), global batch over devices, DDP on CPU, resume after
kill -9, and the hg38 config."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dnadiff.checkpoint import load_checkpoint
from dnadiff.config import load_config, validate_config
from dnadiff.data.prepare import prepare_genome
from dnadiff.errors import DnadiffError
from dnadiff.training import batch_plan

from conftest import default_workdir, outside_checkout, random_dna, write_fasta

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
YEAST = ROOT.parent / "shared" / "data" / "genomes" / "yeast_s288c.fa.gz"


def snakemake(*args, workdir, check=True, background=False):
    """The repository's Snakefile run in ``workdir`` (``--directory`` and the process's current
    folder both), never in the checkout."""
    workdir = outside_checkout(workdir)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir), *args]
    if background:
        return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def dry_run_jobs(output: str) -> dict[str, list[dict]]:
    """Rule name -> [{"resources": {...}, "shell": str}] from a dry run's printout."""
    jobs: dict[str, list[dict]] = {}
    for block in re.split(r"\n(?=\[[A-Z][a-z]{2} )", output):
        m = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        if not m:
            continue
        res = re.search(r"^\s*resources: (.*)$", block, re.M)
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        resources = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}
        jobs.setdefault(m.group(1), []).append(
            {"resources": resources, "shell": shell.group(1) if shell else ""})
    return jobs


def _train_cfg(shell: str) -> dict:
    return json.loads(re.search(r"--config-json '([^']*)'", shell).group(1))


# -- profiles --------------------------------------------------------------------------------------
def test_slurm_profile_dry_run_gives_the_gpu_jobs_their_resources(tmp_path):
    proc = snakemake("-n", "--profile", str(ROOT / "workflow" / "profiles" / "slurm"),
                     "--default-resources", "slurm_account=lab42", "slurm_partition=short",
                     workdir=default_workdir(tmp_path))
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    train = jobs["train"][0]
    r = train["resources"]
    assert (r["gpu"], r["cpus_per_gpu"], r["mem_mb"], r["runtime"]) == ("1", "8", "64000", "1440")
    assert r["slurm_partition"] == "gpu" and r["slurm_account"] == "lab42"
    assert "--requeue" in r["slurm_extra"]
    assert "mpi" not in r and not train["shell"].startswith("srun")  # one task, no launcher
    tc = _train_cfg(train["shell"])["train"]
    assert (tc["devices"], tc["num_nodes"]) == (1, 1)
    for rule in ("sample", "evaluate_likelihood", "downstream_task", "marginal_trap"):
        assert jobs[rule][0]["resources"]["gpu"] == "1", rule
    # CPU jobs take the command line's partition and account
    prep = jobs["prepare"][0]["resources"]
    assert (prep["slurm_partition"], prep["slurm_account"]) == ("short", "lab42")
    assert "gpu" not in prep


def test_multinode_profile_matches_lightning_to_the_allocation(tmp_path):
    proc = snakemake("-n", "--profile", str(ROOT / "workflow" / "profiles" / "slurm-multinode"),
                     workdir=default_workdir(tmp_path))
    train = dry_run_jobs(proc.stdout + proc.stderr)["train"][0]
    r = train["resources"]
    assert (r["nodes"], r["tasks_per_node"], r["gres"], r["mpi"]) == ("2", "4", "gpu:4", "srun")
    # the job step gets the allocation's shape explicitly
    assert train["shell"].startswith("srun --nodes=2 --ntasks-per-node=4 --cpus-per-task=8 ")
    cfg = _train_cfg(train["shell"])
    # nodes x tasks_per_node = Lightning's num_nodes x devices; the global batch stays
    assert (cfg["train"]["num_nodes"], cfg["train"]["devices"]) == (2, 4)
    assert cfg["train"]["batch_size"] == 64
    assert batch_plan(validate_config(cfg)["train"]) == {"world": 8, "per_device": 8,
                                                         "accumulate": 1}


def test_profiles_comment_every_entry():
    for name in ("slurm", "slurm-multinode"):
        lines = (ROOT / "workflow" / "profiles" / name / "profile.yaml").read_text().splitlines()
        for before, line in zip([""] + lines, lines):
            if line.strip() and not line.lstrip().startswith("#"):
                assert "#" in line or before.lstrip().startswith("#"), f"{name}: {line}"


# -- global batch ----------------------------------------------------------------------------------
def test_batch_plan():
    def plan(**kw):
        return batch_plan(validate_config({"run": "x", "train": kw})["train"])

    assert plan(batch_size=64) == {"world": 1, "per_device": 64, "accumulate": 1}
    assert plan(batch_size=1024, devices=4, num_nodes=2) == {"world": 8, "per_device": 128,
                                                             "accumulate": 1}
    assert plan(batch_size=1024, devices=4, num_nodes=2, micro_batch_size=32) == {
        "world": 8, "per_device": 32, "accumulate": 4}
    with pytest.raises(DnadiffError, match="multiple of train.devices x train.num_nodes"):
        plan(batch_size=10, devices=4)
    with pytest.raises(DnadiffError, match="must divide"):
        plan(batch_size=64, micro_batch_size=24)


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    write_fasta(tmp / "g.fa", [(f"c{i}", random_dna(20000, seed=i)) for i in range(4)])
    prepare_genome(tmp / "g.fa", tmp / "data", validation=["c2"], test=["c3"])
    return tmp / "data"


def ar_cfg(**train):
    """The AR objective: its loss has no random draws, so runs can be compared exactly."""
    return {"run": "r", "objective": "ar", "data": {"window": 64},
            "model": {"dim": 32, "layers": 2, "heads": 2, "cond_dim": 32},
            "train": {"steps": 30, "batch_size": 8, "val_every": 10, "log_every": 5,
                      "warmup_steps": 2, "val_windows": 8, **train}}


def run_train(cfg, data, out: Path, wait=True):
    cmd = [sys.executable, "-m", "dnadiff", "train", "--threads", "1", "--config-json",
           json.dumps(cfg), "--data", str(data), "--checkpoint", str(out / "m.pt"),
           "--metrics", str(out / "m.csv"), "--workdir", str(out / "state")]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    log = open(out / "train.log", "a")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=outside_checkout(out))
    if wait:
        assert proc.wait() == 0, (out / "train.log").read_text()[-3000:]
    return proc


def metric_rows(path):
    return {int(r["step"]): r for r in csv.DictReader(open(path))}


def max_weight_diff(a, b, key="state_dict"):
    a, b = load_checkpoint(a)[key], load_checkpoint(b)[key]
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_micro_batches_accumulate_to_the_same_step(genome, tmp_path):
    for name, micro in (("whole", None), ("micro", 2)):
        (tmp_path / name).mkdir()
        run_train(ar_cfg(steps=10, micro_batch_size=micro), genome, tmp_path / name)
    a, b = metric_rows(tmp_path / "whole" / "m.csv"), metric_rows(tmp_path / "micro" / "m.csv")
    assert sorted(a) == sorted(b)
    for step in a:
        assert float(a[step]["train/bits_per_token"]) == pytest.approx(
            float(b[step]["train/bits_per_token"]), abs=1e-5)
    assert max_weight_diff(tmp_path / "whole" / "m.pt", tmp_path / "micro" / "m.pt") < 1e-5
    assert load_checkpoint(tmp_path / "micro" / "m.pt")["step"] == 10


def test_two_process_ddp_matches_one_process(genome, tmp_path):
    """2 CPU processes (gloo), 4 windows each per step, against 1 process with all 8."""
    for name, devices in (("one", 1), ("ddp", 2)):
        (tmp_path / name).mkdir()
        run_train(ar_cfg(devices=devices, strategy="auto" if devices == 1 else "ddp"), genome,
                  tmp_path / name)
    one, ddp = metric_rows(tmp_path / "one" / "m.csv"), metric_rows(tmp_path / "ddp" / "m.csv")
    assert sorted(one) == sorted(ddp) == [4, 9, 14, 19, 24, 29]
    for step in one:
        for key in ("train/bits_per_token", "val/bits_per_token"):
            if one[step][key]:
                assert float(ddp[step][key]) == pytest.approx(float(one[step][key]), abs=1e-5)
    assert max_weight_diff(tmp_path / "one" / "m.pt", tmp_path / "ddp" / "m.pt") < 1e-5
    ckpt = load_checkpoint(tmp_path / "ddp" / "m.pt")
    assert ckpt["step"] == 30 and ckpt["metrics"]["devices"] == 2
    log = (tmp_path / "ddp" / "train.log").read_text()
    assert log.count('"objective": "ar"') == 1  # only rank 0 reports and writes


def _wait_for_checkpoint(state: Path, proc, timeout=120):
    t0 = time.time()
    while not (state / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.time() - t0 < timeout
        time.sleep(0.02)


@pytest.mark.parametrize("objective", ["ar", "mdlm"])
def test_kill_9_then_resume_continues_exactly(genome, tmp_path, objective):
    """Bitwise the same weights, EMA and metrics as the uninterrupted run, also for MDLM,
    whose noise (times, masks) comes from the random stream saved with the state."""
    cfg = {**ar_cfg(steps=200, val_every=20, log_every=10), "objective": objective}
    (tmp_path / "whole").mkdir()
    run_train(cfg, genome, tmp_path / "whole")
    out = tmp_path / "killed"
    out.mkdir()
    proc = run_train(cfg, genome, out, wait=False)
    _wait_for_checkpoint(out / "state", proc)
    # past the checkpoint step and its logged row (a row logged at the very step a checkpoint
    # is written can be lost with a kill in between)
    while "step 30/200" not in (out / "train.log").read_text():
        assert proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (out / "m.pt").exists()
    run_train(cfg, genome, out)  # the same command again
    log = (out / "train.log").read_text()
    resumed = int(re.search(r"resuming from .*last\.ckpt \(step (\d+) of 200\)", log).group(1))
    assert 20 <= resumed < 200
    ckpt = load_checkpoint(out / "m.pt")
    assert ckpt["step"] == 200 and ckpt["metrics"]["resumed_from_step"] == resumed
    # the step counter went on, the windows read on where they stopped, the EMA and the
    # optimizer were restored: the same weights and metrics as the uninterrupted run
    assert max_weight_diff(tmp_path / "whole" / "m.pt", out / "m.pt") == 0.0
    assert max_weight_diff(tmp_path / "whole" / "m.pt", out / "m.pt", "ema_state_dict") == 0.0
    assert metric_rows(out / "m.csv") == metric_rows(tmp_path / "whole" / "m.csv")
    # a finished run is not resumed: the same command trains again from the start
    run_train(cfg, genome, out)
    assert load_checkpoint(out / "m.pt")["metrics"]["resumed_from_step"] == 0


def test_other_data_or_initial_weights_start_afresh(genome, tmp_path):
    from dnadiff.training import fingerprint

    cfg = validate_config(ar_cfg())
    assert fingerprint(cfg, range(8), "a") != fingerprint(cfg, range(8), "b")
    assert fingerprint(cfg, range(8), "a") == fingerprint(
        {**cfg, "train": {**cfg["train"], "log_every": 1, "compile": True}}, range(8), "a")


def test_a_changed_config_starts_afresh(genome, tmp_path):
    cfg = ar_cfg(steps=20)
    run_train(cfg, genome, tmp_path)
    cfg["train"]["lr"] = 1e-3
    run_train(cfg, genome, tmp_path)
    assert "resuming" not in (tmp_path / "train.log").read_text()
    assert load_checkpoint(tmp_path / "m.pt")["metrics"]["resumed_from_step"] == 0


RESUME = """\
run: rs
reference: {{name: yeast-shared, source: "{source}"}}
data: {{window: 64}}
model: {{dim: 32, layers: 2, heads: 2, cond_dim: 32}}
train: {{steps: 300, batch_size: 8, val_every: 25, val_windows: 8, log_every: 50,
         warmup_steps: 5}}
sample: {{num_samples: 2, steps: 4, batch_size: 2}}
evaluate: {{max_windows: 4, kmer_max_k: 2}}
probe: {{enabled: false}}
marginal_trap: {{enabled: false}}
"""


def test_workflow_rule_resumes_after_kill_9(tmp_path):
    if not YEAST.exists():
        pytest.skip(f"{YEAST} not present (../shared/data is needed for the workflow test)")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(RESUME.format(source=YEAST))
    target = "results/rs/mdlm/model.pt"
    snakemake("--cores", "2", "--until", "prepare", workdir=tmp_path)
    smk = snakemake("--cores", "2", target, workdir=tmp_path, background=True)
    state = tmp_path / "results" / "rs" / "mdlm" / "train_state"
    _wait_for_checkpoint(state, smk)
    # kill -9 the training process itself (not Snakemake)
    pids = subprocess.run(["pgrep", "-f", "dnadiff train .*results/rs/mdlm/train_state"],
                          capture_output=True,
                          text=True).stdout.split()
    assert pids
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    smk.wait()
    assert smk.returncode != 0
    assert not (tmp_path / target).exists()
    assert (state / "checkpoints" / "last.ckpt").exists()  # outside the declared outputs
    snakemake("--cores", "2", target, workdir=tmp_path)
    log = (tmp_path / "logs" / "train" / "rs.mdlm.log").read_text()
    resumed = int(re.search(r"resuming from .* \(step (\d+) of 300\)", log).group(1))
    assert resumed >= 25
    ckpt = load_checkpoint(tmp_path / target)
    assert ckpt["step"] == 300 and ckpt["metrics"]["resumed_from_step"] == resumed
    rows = metric_rows(tmp_path / "results" / "rs" / "mdlm" / "metrics.csv")
    # metrics from before the kill and after the resume, one row per logged step
    assert [s + 1 for s in sorted(rows)] == list(range(25, 301, 25))
    assert not (state / "checkpoints").exists()  # a finished run leaves no state to resume


# -- hg38 ------------------------------------------------------------------------------------------
def test_hg38_config_is_the_papers_setup_and_dry_runs(tmp_path):
    from dnadiff.models import build_backbone
    from dnadiff.tokenizers import DNATokenizer

    base = load_config(ROOT / "config" / "config.yaml")
    hg = load_config(ROOT / "config" / "hg38.yaml")
    cfg = validate_config({**base, **hg, "model": {**base["model"], **hg["model"]}})
    assert cfg["reference"]["source"].endswith("/hg38/bigZips/hg38.fa.gz")
    assert cfg["data"]["window"] == 1024 and cfg["train"]["batch_size"] == 1024
    assert cfg["model"]["backbone"] == "caduceus"
    tok = DNATokenizer()
    model = build_backbone(cfg["model"], tok.vocab_size, causal=False,
                           complement=tok.complement.tolist())
    n = sum(p.numel() for p in model.parameters())
    assert 0.4e6 < n < 0.6e6  # the paper: ~0.47M
    text = (ROOT / "config" / "hg38.yaml").read_text()
    assert "3.199" in text and "3.067" in text  # the figures to compare with
    for name in ("chr1_KI270706v1_random", "chrUn_GL000195v1", "chr6_GL000250v2_alt", "chrM"):
        assert any(re.search(p, name) for p in cfg["data"]["exclude"]), name
    assert not any(re.search(p, "chr21") for p in cfg["data"]["exclude"])
    proc = snakemake("-n", "--configfile", str(ROOT / "config" / "hg38.yaml"),
                     workdir=default_workdir(tmp_path))  # config.yaml, then hg38.yaml over it
    out = proc.stdout + proc.stderr
    for rule in ("fetch_reference", "prepare", "train", "evaluate_likelihood", "sample"):
        assert f"rule {rule}:" in out
    jobs = dry_run_jobs(out)
    assert _train_cfg(jobs["train"][0]["shell"])["train"]["steps"] == 10000


def test_data_exclude_leaves_contigs_out(tmp_path):
    write_fasta(tmp_path / "g.fa", [("chr1", random_dna(500, 1)), ("chr1_KI1_alt", "ACGT" * 50),
                                    ("chr2", random_dna(500, 2)), ("chrM", "ACGT" * 20)])
    index = prepare_genome(tmp_path / "g.fa", tmp_path / "d", validation=["chr2"],
                           exclude=["_alt$", "^chrM$"])
    assert [c["name"] for c in index["contigs"]] == ["chr1", "chr2"]
    assert index["excluded_contigs"] == ["chr1_KI1_alt", "chrM"]
    assert index["split_sizes"]["train"] == 500
    with pytest.raises(DnadiffError, match="not a regular expression"):
        validate_config({"run": "x", "data": {"exclude": ["(chr"]}})
