# Helpers shared by the rules (no logic beyond paths and config plumbing).
import json
from pathlib import Path

REPO = Path(workflow.basedir).parent
# Rules call `dnadiff <verb>`. This shell function runs it from this repository, so it works in
# the project's virtual environment, in a conda environment made from environment.yml, and with
# --sdm conda, with or without the package installed. (Keeps Snakemake's strict-mode prefix.)
# (The prefix goes through str.format, hence the doubled braces.)
shell.prefix(
    "set -euo pipefail; "
    'dnadiff() {{ PYTHONPATH="' + str(REPO) + '${{PYTHONPATH:+:$PYTHONPATH}}"'
    ' python -m dnadiff "$@"; }}; '
)
RUN = config["run"]
GENOME = config["reference"]["name"]


def config_json(*sections):
    """The named config sections as JSON, for `dnadiff <verb> --config-json`.

    Passing only the sections a rule uses means a change elsewhere in the config does not
    re-run it (Snakemake re-runs a job when its params change).
    """
    return json.dumps({s: config[s] for s in sections}, sort_keys=True)


def final_outputs():
    run = f"results/{RUN}"
    return [
        f"{run}/samples.fa",
        f"{run}/likelihood.tsv",
        f"{run}/kmer_js.tsv",
        f"{run}/kmer_js.png",
        f"{run}/gc_content.png",
        f"{run}/training_curve.png",
    ]
