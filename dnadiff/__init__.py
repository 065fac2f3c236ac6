"""dnadiff: masked discrete diffusion language models (MDLM) for genomes.

The package holds all logic; ``dnadiff.cli`` is a thin command-line layer and the Snakemake
workflow in ``workflow/`` calls its verbs. From Python, ``dnadiff.load(path)`` returns a trained
model (:class:`dnadiff.api.Model`) that samples, scores sequences and variants and embeds
sequences; ``import dnadiff`` itself stays cheap (the API loads on first use).
"""

__version__ = "0.1.0"
__all__ = ["Model", "load", "__version__"]


def __getattr__(name: str):
    if name in ("load", "Model"):  # torch and the models load only when asked for
        from dnadiff import api

        return getattr(api, name)
    raise AttributeError(f"module 'dnadiff' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "Model", "load"])
