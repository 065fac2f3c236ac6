"""The workflow on a real SLURM cluster: one node on localhost (tests/slurm/up.sh), the
snakemake-executor-plugin-slurm submitting through sbatch and polling sacct (slurmdbd).

Runs as root with the Debian packages slurm-wlm slurmdbd munge mariadb-server; skipped
otherwise, or with DNADIFF_SLURM_TESTS=0. The profiles under test are workflow/profiles/slurm
and slurm-multinode, shrunk to this node by `node_profile` (memory, CPUs per GPU/task, the
multi-node shape): every other entry (partitions, GPUs, --requeue, retries, srun) is kept.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import outside_checkout

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
YEAST = ROOT.parent / "shared" / "data" / "genomes" / "yeast_s288c.fa.gz"
UP = ROOT / "tests" / "slurm" / "up.sh"
ACCOUNT = ["--default-resources", "slurm_account=dnadiff", "slurm_partition=cpu"]
# poll sacct every few seconds (the plugin's default waits 40 s before its first look)
FAST = ["--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2"]
DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd",
           "sbatch", "sacct", "scontrol")


def _why_not() -> str | None:
    if os.environ.get("DNADIFF_SLURM_TESTS", "1").lower() in ("0", "false", "no", "off"):
        return "DNADIFF_SLURM_TESTS=0"
    if os.geteuid() != 0:
        return "the localhost SLURM cluster (tests/slurm/up.sh) needs root"
    missing = [d for d in DAEMONS if not shutil.which(d, path=os.environ["PATH"] + ":/usr/sbin")]
    if missing:
        return (f"{', '.join(missing)} not installed (apt-get install -y slurm-wlm slurmdbd "
                "munge mariadb-server)")
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_why_not() is not None,
                                                   reason=f"no SLURM cluster: {_why_not()}")]


@pytest.fixture(scope="session")
def cluster():
    proc = subprocess.run(["bash", str(UP)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"tests/slurm/up.sh could not start the cluster: "
                    f"{(proc.stdout + proc.stderr).strip()[-1500:]}")
    return True


@pytest.fixture
def genome(tmp_path):
    if not YEAST.exists():
        pytest.skip(f"{YEAST} not present (../shared/data is needed for the workflow tests)")
    return YEAST


def env():
    return dict(os.environ,
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}:/usr/sbin")


def snakemake(workdir, *args, profile=None, check=True, background=False, timeout=900):
    """Snakemake in `workdir`; with a profile, through SLURM. Output goes to workdir/smk.log
    (appended), which is also returned."""
    workdir = outside_checkout(workdir)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir)]
    if profile:
        cmd += ["--profile", str(profile), *ACCOUNT, *FAST]
    else:
        cmd += ["--cores", "2"]
    cmd += list(args)
    log = open(Path(workdir) / "smk.log", "a")
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, cwd=workdir, env=env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    if background:
        return proc
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (Path(workdir) / "smk.log").read_text()
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out[-4000:]}")
    return out


def node_profile(tmp_path, name="slurm", train=None, threads=1) -> Path:
    """workflow/profiles/<name> fitted to this 2-CPU node: at most 3 GB per job, one CPU per
    GPU or task, `threads` training threads; `train` updates the train rule's resources."""
    prof = yaml.safe_load((ROOT / "workflow" / "profiles" / name / "profile.yaml").read_text())
    for res in prof["set-resources"].values():
        res["mem_mb"] = min(res["mem_mb"], 3000)
        for key in ("cpus_per_gpu", "cpus_per_task"):
            if key in res:
                res[key] = 1
    prof["set-threads"]["train"] = threads
    prof["set-resources"]["train"].update(train or {})
    out = tmp_path / f"profile-{name}"
    out.mkdir(exist_ok=True)
    (out / "profile.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return out


CONFIG = """\
run: {run}
reference: {{name: yeast, source: "{source}"}}
data: {{window: 128}}
model: {{dim: 32, layers: 2, heads: 2, cond_dim: 32}}
train: {{steps: {steps}, batch_size: 8, val_every: {val_every}, val_windows: 8,
         log_every: {log_every}, warmup_steps: 5}}
sample: {{num_samples: 4, steps: 8, batch_size: 4}}
evaluate: {{max_windows: 8, kmer_max_k: 2, markov_order: 1}}
probe: {{enabled: false}}
marginal_trap: {{enabled: false}}
"""


def workdir(tmp_path, name, run="sl", source=YEAST, steps=40, val_every=20, log_every=10):
    work = tmp_path / name
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text(CONFIG.format(
        run=run, source=source, steps=steps, val_every=val_every, log_every=log_every))
    return work


def sacct(*args) -> list[dict]:
    out = subprocess.run(["sacct", "--parsable2", "--noheader", "--duplicates", *args,
                          "--format=JobID,JobName%60,State,Partition,Account,AllocTRES%80,"
                          "NTasks,Timelimit"], capture_output=True, text=True, env=env(),
                         check=True).stdout
    keys = ["jobid", "name", "state", "partition", "account", "tres", "ntasks", "timelimit"]
    return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line]


def submitted(log: str) -> dict[str, list[str]]:
    """Rule -> SLURM job ids, from the plugin's 'submitted with SLURM jobid' lines."""
    jobs: dict[str, list[str]] = {}
    for jobid, rule in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+?)/",
                                  log):
        jobs.setdefault(rule, []).append(jobid)
    return jobs


def metric_rows(path):
    return {int(r["step"]): r for r in csv.DictReader(open(path))}


def state_dicts(path):
    from dnadiff.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    return ckpt, ckpt["state_dict"]


def wait_until(cond, proc, timeout, what):
    t0 = time.time()
    while not cond():
        assert proc.poll() is None, f"snakemake ended while waiting for {what}"
        assert time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.5)


def train_job(tmp_log: Path) -> str:
    jobs = submitted(tmp_log.read_text()).get("train", [])
    return jobs[-1] if jobs else ""


# -- the tiny workflow, every job through sbatch --------------------------------------------------
def test_tiny_workflow_runs_every_job_on_slurm_and_matches_a_local_run(cluster, genome, tmp_path):
    slurm = workdir(tmp_path, "slurm")
    log = snakemake(slurm, profile=node_profile(tmp_path))
    assert "9 of 9 steps (100%) done" in log
    jobs = submitted(log)
    # every job but the front page and the target rule went through sbatch, once
    assert sorted(jobs) == sorted(["fetch_reference", "prepare", "train", "sample",
                                   "evaluate_likelihood", "evaluate_samples", "score_samples"])
    assert all(len(ids) == 1 for ids in jobs.values()), jobs
    # ... but the front page of the report (a second of Python) and the target rule `all`
    assert re.findall(r"^localrule (\w+):", log, re.M) == ["report_front_page", "all"]
    # ... and sacct (slurmdbd) has each as COMPLETED, under the run's uuid as the job name
    ids = [i for ids in jobs.values() for i in ids]
    rows = {r["jobid"]: r for r in sacct("-X", "-j", ",".join(ids))}
    assert set(rows) == set(ids)
    assert {r["state"] for r in rows.values()} == {"COMPLETED"}
    assert len({r["name"] for r in rows.values()}) == 1
    assert {r["account"] for r in rows.values()} == {"dnadiff"}
    # the profile's GPU rules went to its gpu partition with a GPU; CPU rules to the command
    # line's partition
    for rule in ("train", "sample", "evaluate_likelihood"):
        row = rows[jobs[rule][0]]
        assert row["partition"] == "gpu" and "gres/gpu=1" in row["tres"], (rule, row)
    for rule in ("prepare", "score_samples"):
        row = rows[jobs[rule][0]]
        assert row["partition"] == "cpu" and "gres/gpu" not in row["tres"], (rule, row)

    # the same workflow run locally (same training threads): the same model, metrics, samples
    local = workdir(tmp_path, "local")
    snakemake(local, "--set-threads", "train=1")
    res_s, res_l = slurm / "results" / "sl", local / "results" / "sl"
    (ck_s, sd_s), (ck_l, sd_l) = (state_dicts(r / "mdlm" / "model.pt") for r in (res_s, res_l))
    assert ck_s["step"] == ck_l["step"] == 40
    assert max(float((sd_s[k] - sd_l[k]).abs().max()) for k in sd_s) == 0.0
    assert metric_rows(res_s / "mdlm" / "metrics.csv") == metric_rows(
        res_l / "mdlm" / "metrics.csv")
    assert (res_s / "samples.fa").read_text() == (res_l / "samples.fa").read_text()
    assert (res_s / "mdlm" / "likelihood.tsv").read_text() == (
        res_l / "mdlm" / "likelihood.tsv").read_text()


# -- preemption and the time limit: training resumes its saved state ------------------------------
@pytest.fixture(scope="module")
def step_seconds(cluster, tmp_path_factory):
    """Seconds per training step here and now (one thread, this config), from a short local
    run: the interrupted trainings below are sized in seconds, whatever the machine's load."""
    if not YEAST.exists():
        pytest.skip(f"{YEAST} not present (../shared/data is needed for the workflow tests)")
    work = workdir(tmp_path_factory.mktemp("calibrate"), "calibrate", steps=200, val_every=20,
                   log_every=20)
    snakemake(work, "results/sl/mdlm/model.pt", "--set-threads", "train=1")
    summary = (work / "logs" / "train" / "sl.mdlm.log").read_text().splitlines()[-1]
    return json.loads(summary)["train_seconds"] / 200


def sized(seconds, step_seconds, checkpoints=12):
    """(steps, every): `checkpoints` saved states over about `seconds` of training."""
    every = max(10, round(seconds / step_seconds / checkpoints / 10) * 10)
    return every * checkpoints, every


def _resumed_run(work, steps, every):
    log = (work / "logs" / "train" / "sl.mdlm.log").read_text()
    resumed = int(re.search(rf"resuming from .* \(step (\d+) of {steps}\)", log).group(1))
    assert resumed >= every
    ckpt, _ = state_dicts(work / "results" / "sl" / "mdlm" / "model.pt")
    assert ckpt["step"] == steps and ckpt["metrics"]["resumed_from_step"] == resumed
    rows = metric_rows(work / "results" / "sl" / "mdlm" / "metrics.csv")
    # rows from before the interruption and after the resume, every logged step once
    assert [s + 1 for s in sorted(rows)] == list(range(every, steps + 1, every))
    assert not (work / "results" / "sl" / "mdlm" / "train_state" / "checkpoints").exists()
    return resumed


def test_requeued_training_job_resumes_its_state(cluster, genome, tmp_path, step_seconds):
    steps, every = sized(40, step_seconds)  # requeued after 2 of 12 saved states
    work = workdir(tmp_path, "requeue", steps=steps, val_every=every, log_every=every)
    snakemake(work, "--until", "prepare")  # locally: only the training goes through SLURM
    target = "results/sl/mdlm/model.pt"
    smk = snakemake(work, target, profile=node_profile(tmp_path), background=True)
    state = work / "results" / "sl" / "mdlm" / "train_state" / "checkpoints" / "last.ckpt"
    train_log = work / "logs" / "train" / "sl.mdlm.log"
    wait_until(lambda: state.exists() and train_log.exists()
               and f"step {2 * every}/{steps}" in train_log.read_text(), smk, 300,
               "the first saved state")
    job = train_job(work / "smk.log")
    subprocess.run(["scontrol", "requeue", job], check=True, env=env())
    # a requeued job waits ~2 min (BeginTime) before it is eligible again: start it now
    wait_until(lambda: "PENDING" in subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True,
        env=env()).stdout, smk, 60, "the requeued job to pend")
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True,
                   env=env())
    assert smk.wait(timeout=600) == 0, (work / "smk.log").read_text()[-4000:]
    # one SLURM job, run twice: REQUEUED, then COMPLETED
    assert submitted((work / "smk.log").read_text())["train"] == [job]
    assert [r["state"] for r in sacct("-X", "-j", job)] == ["REQUEUED", "COMPLETED"]
    _resumed_run(work, steps, every)


def test_training_past_its_time_limit_resumes_on_the_retry(cluster, genome, tmp_path,
                                                           step_seconds):
    # 150 s of training under a 1-minute limit (make test runs this file beside the rest of the
    # suite, so the load, and the speed of a step, may change after the calibration)
    steps, every = sized(150, step_seconds)
    work = workdir(tmp_path, "timeout", steps=steps, val_every=every, log_every=every)
    snakemake(work, "--until", "prepare")
    # --time=1 on the first attempt: SLURM ends the job after 1-1.5 min, part way; the
    # profile's retries submit it again (--time=6, the way one asks more of a retry) and it goes
    # on from its last saved state
    log = snakemake(work, "results/sl/mdlm/model.pt",
                    profile=node_profile(tmp_path, train={"runtime": "5*attempt-4"}))
    jobs = submitted(log)["train"]
    rows = [sacct("-X", "-j", j)[-1] for j in jobs]
    assert [(r["state"], r["timelimit"]) for r in rows] == [("TIMEOUT", "00:01:00"),
                                                             ("COMPLETED", "00:06:00")]
    assert "SLURM status is: 'TIMEOUT'" in log
    _resumed_run(work, steps, every)


# -- several processes started by srun ------------------------------------------------------------
def test_srun_two_tasks_train_like_one_process(cluster, genome, tmp_path):
    """slurm-multinode shaped to 1 node x 2 tasks: srun starts both ranks, Lightning takes the
    world size from SLURM's environment (gloo on the CPU), the AR losses (no random draws)
    equal one process's, and only rank 0 writes."""
    target = "results/sl/ar/model.pt"
    one = workdir(tmp_path, "one", steps=30, val_every=10, log_every=5)
    snakemake(one, target, "--set-threads", "train=1")
    two = workdir(tmp_path, "two", steps=30, val_every=10, log_every=5)
    snakemake(two, "--until", "prepare")
    prof = node_profile(tmp_path, "slurm-multinode",
                        train={"nodes": 1, "tasks_per_node": 2, "gres": "gpu:1"})
    log = snakemake(two, target, profile=prof)
    job = submitted(log)["train"][0]
    assert "srun --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 " in log
    steps = {r["jobid"]: r for r in sacct("-j", job)}
    assert steps[job]["state"] == "COMPLETED"
    assert any(r["ntasks"] == "2" and r["state"] == "COMPLETED" for j, r in steps.items()
               if re.fullmatch(rf"{job}\.\d+", j)), steps  # the srun step: 2 tasks
    train_log = (two / "logs" / "train" / "sl.ar.log").read_text()
    assert "cpu x 2 (1 node(s))" in train_log
    assert train_log.count("training dit with the ar objective") == 1  # rank 0 reports
    assert train_log.count('"objective": "ar"') == 1  # and writes
    ck2, sd2 = state_dicts(two / "results" / "sl" / "ar" / "model.pt")
    ck1, sd1 = state_dicts(one / "results" / "sl" / "ar" / "model.pt")
    assert ck2["metrics"]["devices"] == 2 and ck1["metrics"]["devices"] == 1
    assert ck2["step"] == ck1["step"] == 30
    r1, r2 = (metric_rows(w / "results" / "sl" / "ar" / "metrics.csv") for w in (one, two))
    assert sorted(r1) == sorted(r2) == [4, 9, 14, 19, 24, 29]
    for step in r1:
        for key in ("train/bits_per_token", "val/bits_per_token"):
            if r1[step][key]:
                assert float(r2[step][key]) == pytest.approx(float(r1[step][key]), abs=1e-5)
    assert max(float((sd1[k] - sd2[k]).abs().max()) for k in sd1) < 1e-5


# -- a failing job --------------------------------------------------------------------------------
def test_a_failing_job_shows_its_error_in_snakemakes_output(cluster, tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">chr1\nACGTNNACGT\nthis is not dna 123\n")
    work = workdir(tmp_path, "bad", source=bad)
    log = snakemake(work, "--retries", "0", profile=node_profile(tmp_path), check=False)
    jobs = submitted(log)
    assert list(jobs) == ["fetch_reference"] and len(jobs["fetch_reference"]) == 1
    assert {r["state"] for r in sacct("-X", "-j", ",".join(jobs["fetch_reference"]))} == {
        "FAILED"}
    # the one-line error, in Snakemake's own output (not only in the SLURM job's log)
    line = (f"dnadiff: error: {bad}: record 'chr1' (line 1): character 'i' at position 13 is "
            "not a nucleotide code")
    assert line in log
    assert "Exiting because a job execution failed" in log
