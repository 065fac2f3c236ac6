"""Stage 5, the discreteness analyses of Jin et al. and the model's reach: ``probe collapse |
trap | influence``."""

from __future__ import annotations

import json

from dnadiff.cli.common import config, optional, verb, verb_group, write_outputs


def register(sub) -> None:
    """Add ``probe`` and its analyses to the parser."""
    pb = verb_group(sub, "probe", "the discreteness analyses of Jin et al. and influence by "
                    "distance (DNA and text)")
    verb(pb, "collapse", "masked-position probe: prompt + masks, one forward pass", collapse,
         inputs={"checkpoint": "MDLM checkpoint", "data": "prepared data directory",
                 "prompts": optional("JSONL of prompts (default: probe.prompts, else held-out "
                                     "prefixes)")},
         out={"out_tsv": "per prompt and masked position",
              "out_curves": "means per distance (TSV)", "out_json": "summary",
              "plot": optional("curves against distance (PNG)")})

    verb(pb, "trap", "marginal trap: sample quality against tokens per step", trap,
         inputs={"checkpoint": "MDLM checkpoint", "data": "prepared data directory",
                 "ar_checkpoint": optional("the run's AR model (text: generative perplexity)")},
         out={"out_tsv": None, "out_json": None,
              "plot": optional("quality against tokens per step (PNG)")})

    verb(pb, "influence", "influence by distance: how much the token d positions away moves the "
         "prediction (KL, bits; MDLM and AR)", influence,
         inputs={"checkpoint": "MDLM or AR checkpoint",
                 "data": "prepared data directory (its test split)"},
         out={"out_tsv": "mean KL per distance and side",
              "out_json": "the same with the probe's settings"})


def collapse(args) -> None:
    """``dnadiff probe collapse``."""
    from dnadiff.evaluation.discreteness import run_collapse
    from dnadiff.evaluation.plots import plot_collapse
    from dnadiff.resolve import probe_shape

    cfg = config(args)
    masks, prompt_length = probe_shape(cfg)
    res = run_collapse(args.checkpoint, args.data, cfg["probe"], masks, prompt_length,
                       args.prompts or cfg["probe"]["prompts"], cfg["evaluate"]["batch_size"])
    write_outputs({args.out_tsv: ("tsv", res["rows"]), args.out_curves: ("tsv", res["curves"]),
                   args.out_json: ("json", res["summary"])},
                  args.plot and (lambda: plot_collapse(res["curves"], res["summary"],
                                                       args.plot)))
    print(json.dumps(res["summary"]["at_distance"]))


def trap(args) -> None:
    """``dnadiff probe trap``."""
    from dnadiff.evaluation.discreteness import run_marginal_trap
    from dnadiff.evaluation.plots import plot_marginal_trap

    cfg = config(args)
    res = run_marginal_trap(args.checkpoint, args.data, cfg["marginal_trap"], cfg["evaluate"],
                            args.ar_checkpoint, cfg["sample"])
    res.pop("_samples")
    write_outputs({args.out_tsv: ("tsv", res["rows"]), args.out_json: ("json", res)},
                  args.plot and (lambda: plot_marginal_trap(res["rows"], res["modality"],
                                                            args.plot)))
    print(json.dumps(res["rows"]))


def influence(args) -> None:
    """``dnadiff probe influence``."""
    from dnadiff.evaluation.influence import run_influence

    cfg = config(args)
    res = run_influence(args.checkpoint, args.data, cfg["influence"],
                        cfg["evaluate"]["batch_size"])
    write_outputs({args.out_tsv: ("tsv", res["rows"]), args.out_json: ("json", res)})
    print(json.dumps(res["rows"]))
