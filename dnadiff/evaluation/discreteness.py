"""The analyses of "The Role of Discreteness in Diffusion LLMs" (Jin et al.) on our models.

*Positional collapse* (``collapse_probe``): a prompt followed by ``masks`` [MASK] tokens, one
forward pass, and for every masked position (distance d = 1..masks from the prompt) the top-3
tokens with their probabilities, the entropy (bits), the probability mass on the 10 most
frequent training tokens and on [EOS], and (DNA) the KL divergence of the prediction from the
training base composition. Far from the prompt a masked diffusion model's prediction tends to
the corpus marginal: high-frequency tokens, punctuation, end of document.

*The marginal trap* (``marginal_trap``): a masked diffusion model draws every token revealed in
one step from its own marginal, independently of the others revealed in the same step. Sampling
with steps = length / d reveals d tokens per step on average; the quality of the samples as d
grows shows the cost of that factorization.

Both see token ids and a mask id only: the same code runs on DNA and text models. What differs
is the scoring of samples (``dnadiff.evaluation.text_scores`` for text, the DNA scorer
``dnadiff.evaluation.dna_scores`` for DNA), chosen by the tokenizer's modality.

(The command-line verb is ``dnadiff probe``; "probe" alone elsewhere is the linear probe of
``dnadiff.downstream``.)
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter

import numpy as np
import torch

from dnadiff import runtime
from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint
from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import RandomWindows
from dnadiff.diffusion.samplers import SAMPLERS, block_sampler, sampler_options
from dnadiff.diffusion.samplers.driver import fill_batches
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.evaluation import dna_scores, text_scores
from dnadiff.evaluation.composition import entropy_bits
from dnadiff.io import read_jsonl
from dnadiff.resolve import resolve_section

log = logging.getLogger(__name__)
LOG2E = 1.0 / np.log(2.0)
QUOTED_DISTANCES = (1, 32, 128)


# -- prompts ------------------------------------------------------------------------------------
def read_prompt_file(path, tokenizer, n: int, prompt_length: int) -> list[tuple[str, np.ndarray]]:
    """The first ``n`` usable prompts of a JSONL file (objects with a "prompt" string), each
    encoded and cut to its last ``prompt_length`` tokens. Characters a character tokenizer does
    not know are dropped (and counted in the log)."""
    prompts, dropped = [], 0
    for line_no, rec in read_jsonl(path):
        if len(prompts) == n:
            break
        if not isinstance(rec.get("prompt"), str):
            raise InputFileError(path, f"line {line_no}: expected an object with a 'prompt' "
                                       "string")
        text = rec["prompt"]
        if tokenizer.modality == "text":
            ids = tokenizer.encode(text, unknown="skip")
            if tokenizer.name == "char":
                dropped += len(text) - len(ids)
        else:
            try:
                ids = tokenizer.encode(text)
            except ValueError as exc:
                raise InputFileError(path, f"line {line_no}: {exc}") from None
        if len(ids) == 0:
            continue
        prompts.append((str(rec.get("id", line_no)), np.asarray(ids[-prompt_length:])))
    if not prompts:
        raise InputFileError(path, "has no usable prompt")
    if dropped:
        log.info("%d prompt characters are not in the tokenizer's vocabulary and were dropped",
                 dropped)
    return prompts


def heldout_prompts(data_dir, n: int, prompt_length: int, seed: int
                    ) -> list[tuple[str, np.ndarray]]:
    """Prefixes of ``n`` random windows of the held-out (test) split."""
    genome = PreparedData(data_dir)
    ds = RandomWindows(genome, "test", prompt_length, n, seed=seed)
    out = []
    for i in range(n):
        ci, start, _ = ds.locate(i)
        out.append((f"{genome.contigs[ci]['name']}:{start}", ds[i]["tokens"].numpy()))
    return out


# -- positional collapse ------------------------------------------------------------------------
def _same_tokenizer(tok, genome: PreparedData, checkpoint) -> None:
    if tok.tokens != genome.tokenizer.tokens:
        raise DnadiffError(f"{checkpoint} and {genome.path} use different tokenizers (was the "
                           "model trained on this prepared data?)")


def _load_mdlm(checkpoint):
    """(the checkpoint, its model on this machine's device, objective, tokenizer, the device)
    of ``checkpoint``, which the probes need to be a masked diffusion (mdlm) model."""
    ckpt = load_checkpoint(checkpoint)
    model, objective, tokenizer = model_from_checkpoint(ckpt)
    if objective.name != "mdlm":
        raise DnadiffError(f"{checkpoint}: the probes need a masked diffusion (mdlm) checkpoint, "
                           f"not {objective.name!r}")
    device = runtime.device()
    model.to(device)
    return ckpt, model, objective, tokenizer, device


def time_for_masked_fraction(schedule, fraction: float) -> float:
    """The diffusion time t at which a token is masked with probability ``fraction``
    (1 - alpha(t) = fraction; bisection, alpha decreases in t)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if 1.0 - float(schedule.alpha(torch.tensor(mid, dtype=torch.float64))) < fraction:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@torch.no_grad()
def collapse_probe(model, objective, tokenizer, prompts, masks: int, train_counts,
                   device: str = "cpu", batch_size: int = 32) -> list[dict]:
    """One row per (prompt, masked position). ``train_counts``: token counts of the training
    split (vocabulary order), for the 10 most frequent tokens and the base composition."""
    gen = np.asarray(tokenizer.generable_ids)
    counts = np.asarray(train_counts, dtype=np.float64)
    top10 = gen[np.argsort(-counts[gen], kind="stable")[:10]]
    most_frequent = int(top10[0])
    composition = counts[gen] / counts[gen].sum()
    eos = tokenizer.eos_id
    def name(i: int) -> str:  # TSV-safe: newlines and tabs escaped
        return json.dumps(tokenizer.token_text(i), ensure_ascii=False)[1:-1]
    rows: list[dict] = []
    by_length: dict[int, list[int]] = {}
    for j, (_pid, ids) in enumerate(prompts):
        by_length.setdefault(len(ids), []).append(j)
    for length, members in sorted(by_length.items()):
        for b in range(0, len(members), batch_size):
            group = members[b:b + batch_size]
            x = torch.full((len(group), length + masks), objective.mask_id, dtype=torch.long)
            for r, j in enumerate(group):
                x[r, :length] = torch.as_tensor(np.asarray(prompts[j][1], dtype=np.int64))
            x = x.to(device)
            # the noise level at which such an input is seen in training: 1 - alpha(t) = the
            # masked fraction (matters only for time-conditioned models)
            t_frac = time_for_masked_fraction(objective.schedule, masks / (length + masks))
            t = torch.full((len(group),), t_frac, device=device)
            # a block diffusion model predicts the masks of the first block after the prompt
            # in one pass; the positions after it are NaN and left out
            logp = objective.one_pass_log_probs(model, x, t)[:, length:].double().cpu()
            p = logp.exp()
            ent = -(torch.where(p > 0, p * logp, torch.zeros_like(p))).sum(-1) * LOG2E
            top_p, top_i = p.topk(3, dim=-1)
            m10 = p[..., top10].sum(-1)
            m_eos = p[..., eos] if eos is not None else None
            kl = None
            if tokenizer.modality == "dna":
                pg = p[..., gen]
                log_c = torch.from_numpy(np.log(np.maximum(composition, 1e-300)))
                kl = (torch.where(pg > 0, pg * (pg.clamp_min(1e-300).log() - log_c),
                                  torch.zeros_like(pg))).sum(-1) * LOG2E
            seen = int((~logp[0].isnan().all(-1)).sum())
            for r, j in enumerate(group):
                pid = prompts[j][0]
                for d in range(seen):
                    row = {"prompt_id": pid, "prompt_tokens": length, "distance": d + 1}
                    for k in range(3):
                        row[f"top{k + 1}"] = name(int(top_i[r, d, k]))
                        row[f"p{k + 1}"] = float(top_p[r, d, k])
                    row["entropy_bits"] = float(ent[r, d])
                    row["top10_mass"] = float(m10[r, d])
                    if m_eos is not None:
                        row["eos_mass"] = float(m_eos[r, d])
                    if kl is not None:
                        row["kl_composition_bits"] = float(kl[r, d])
                    row["top1_is_most_frequent"] = int(int(top_i[r, d, 0]) == most_frequent)
                    rows.append(row)
    return rows


CURVE_COLUMNS = ("entropy_bits", "p1", "top10_mass", "eos_mass", "kl_composition_bits",
                 "top1_is_most_frequent")


def collapse_curves(rows: list[dict]) -> list[dict]:
    """Means (and the entropy's sd) over prompts at each distance; the commonest top-1 token."""
    out = []
    by_d: dict[int, list[dict]] = {}
    for r in rows:
        by_d.setdefault(r["distance"], []).append(r)
    for d, rs in sorted(by_d.items()):
        row = {"distance": d, "prompts": len(rs)}
        for c in CURVE_COLUMNS:
            if c in rs[0]:
                v = np.array([r[c] for r in rs], dtype=np.float64)
                row[f"{c}_mean"] = float(v.mean())
                if c == "entropy_bits":
                    row["entropy_bits_sd"] = float(v.std())
        tops = [r["top1"] for r in rs]
        common, count = Counter(tops).most_common(1)[0]  # ties: the first seen
        row["commonest_top1"] = common
        row["commonest_top1_share"] = count / len(tops)
        out.append(row)
    return out


def run_collapse(checkpoint, data_dir, probe_cfg: dict, masks: int, prompt_length: int,
                 prompts_file=None, batch_size: int = 32) -> dict:
    """The probe on ``checkpoint``: rows, curves and a summary (entropy at distance 1/32/128).
    A block diffusion model is probed at the masks of the block after the prompt (what one pass
    predicts): its summary's ``block_size`` says so."""
    ckpt, model, objective, tokenizer, device = _load_mdlm(checkpoint)
    genome = PreparedData(data_dir)
    _same_tokenizer(tokenizer, genome, checkpoint)
    n = probe_cfg["num_prompts"]
    if prompts_file:
        prompts = read_prompt_file(prompts_file, tokenizer, n, prompt_length)
        source = str(prompts_file)
    else:
        prompts = heldout_prompts(data_dir, n, prompt_length, probe_cfg["seed"])
        source = f"random held-out (test) prefixes of {prompt_length} tokens"
    train_counts = genome.token_counts("train")
    t0 = time.time()
    rows = collapse_probe(model, objective, tokenizer, prompts, masks, train_counts, device,
                          batch_size)
    print(f"probe: {len(prompts)} prompts x {masks} masks in {time.time() - t0:.1f} s",
          file=sys.stderr, flush=True)
    curves = collapse_curves(rows)
    gen = np.asarray(tokenizer.generable_ids)
    summary = {
        "checkpoint": str(checkpoint), "checkpoint_step": ckpt["step"],
        "modality": tokenizer.modality, "prompts": len(prompts), "prompt_source": source,
        "masks": masks, "prompt_length_max": prompt_length,
        "block_size": objective.block_size,
        "mean_prompt_tokens": float(np.mean([len(p) for _, p in prompts])),
        # the entropy a prediction that had collapsed to the corpus marginal would have
        "train_unigram_entropy_bits": entropy_bits(train_counts[gen]),
        "at_distance": {str(d): {k: v for k, v in curves[d - 1].items() if k != "distance"}
                        for d in QUOTED_DISTANCES if d <= len(curves)},
    }
    return {"rows": rows, "curves": curves, "summary": summary}


# -- the marginal trap --------------------------------------------------------------------------
def trap_steps(length: int, divisors) -> list[tuple[int, int]]:
    """(divisor, steps) pairs with steps = length / divisor (at least 1), distinct steps."""
    out, seen = [], set()
    for d in sorted(set(divisors)):
        steps = max(1, length // d)
        if steps not in seen:
            seen.add(steps)
            out.append((d, steps))
    return out


def sweep_plan(length: int, trap_cfg: dict) -> list[tuple[str, int, int]]:
    """(sampler, divisor, steps) of the sweep: each sampler at each budget, a sampler whose
    passes do not follow the steps (first_hitting: one pass per position) at the largest only."""
    budgets = trap_steps(length, trap_cfg["divisors"])
    plan = []
    for name in trap_cfg["samplers"]:
        for divisor, steps in (budgets if SAMPLERS[name].steps else budgets[:1]):
            plan.append((name, divisor, steps))
    return plan


def run_marginal_trap(checkpoint, data_dir, trap_cfg: dict, eval_cfg: dict,
                      ar_checkpoint=None, sample_cfg: dict | None = None) -> dict:
    """Sample ``num_samples`` sequences with each sampler at each step count and score them,
    with a reference row for real held-out windows (tokens_per_step 0): validation windows for
    DNA (the floor of the k-mer figures against the test split), test windows for text (the AR
    scorer was selected on validation). Samplers take their options from ``sample_cfg``."""
    ckpt, model, objective, tok, device = _load_mdlm(checkpoint)
    window = ckpt["config"]["data"]["window"]
    length = resolve_section("marginal_trap", trap_cfg, window)["length"]
    if length > window:
        raise DnadiffError(f"marginal_trap.length ({length}) exceeds the model's context "
                           f"({window})")
    n, bs = trap_cfg["num_samples"], trap_cfg["batch_size"]
    modality = tok.modality
    _same_tokenizer(tok, PreparedData(data_dir), checkpoint)
    score, real = (text_scores.trap_scorer(ar_checkpoint, tok, eval_cfg, data_dir, length, n)
                   if modality == "text" else
                   dna_scores.trap_scorer(data_dir, eval_cfg, length, n, ar_checkpoint, tok))
    sample_cfg = sample_cfg or {}
    rows, samples = [], {}
    block = objective.block_size  # block diffusion: steps are per block
    unit = min(block or length, length)  # what the steps denoise: the window, or a block
    for name, divisor, steps in sweep_plan(unit, trap_cfg):
        gen = torch.Generator().manual_seed(trap_cfg["seed"])
        fill = block_sampler(name, objective, model, steps=steps, cache=True,
                             **sampler_options(name, sample_cfg))
        seqs, passes, row_evals, t0 = [], 0, 0, time.time()
        start = torch.full((length,), objective.mask_id, dtype=torch.long)
        for _, x, info in fill_batches(fill, n, bs, start, gen, device):
            passes += info["forward_passes"]
            row_evals += info["row_evaluations"]
            seqs += list(x.numpy())
        seconds = time.time() - t0
        print(f"marginal trap: {name}, steps {steps} ({unit / steps:g} tokens/step): {n} "
              f"samples in {seconds:.1f} s", file=sys.stderr, flush=True)
        label = f"mdlm_steps{steps}" if name == "ancestral" else f"{name}_steps{steps}"
        samples[label] = seqs
        rows.append({"set": label, "sampler": name, "block_size": unit, "steps": steps,
                     "tokens_per_step": unit / steps, "divisor": divisor,
                     "forward_passes": passes, "passes_per_sequence": row_evals / n,
                     "sample_seconds": round(seconds, 3),
                     "seconds_per_sequence": round(seconds / n, 5), **score(seqs)})
    rows.append({"set": "real_heldout", "sampler": "", "block_size": 0, "steps": 0,
                 "tokens_per_step": 0.0,
                 "divisor": 0, "forward_passes": 0, "passes_per_sequence": 0.0,
                 "sample_seconds": 0.0, "seconds_per_sequence": 0.0, **score(real)})
    return {"checkpoint": str(checkpoint), "checkpoint_step": ckpt["step"],
            "modality": modality, "length": length, "num_samples": n, "rows": rows,
            "_samples": samples}
