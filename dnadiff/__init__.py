"""dnadiff: masked discrete diffusion language models (MDLM) for genomes.

The package holds all logic; ``dnadiff.cli`` is a thin command-line layer and the Snakemake
workflow in ``workflow/`` calls its verbs.
"""

__version__ = "0.1.0"
