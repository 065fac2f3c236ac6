"""The quality-against-compute table (``resources/figures/quality_vs_compute.tsv``) and its plot
(``dnadiff bench compute-plot``): held-out bits per token and the samples' measure against
training FLOPs, a row of panels per corpus. The reader refuses a malformed table in one line
naming the file, line and column."""

from __future__ import annotations

import math
import re

from dnadiff.errors import InputFileError
from dnadiff.evaluation.plots import plot_format, plt
from dnadiff.io import atomic_path, decode_text, read_bounded

#: what a quality-against-compute table may hold
QVC_TEXT = ("model", "label", "device", "corpus")
QVC_REQUIRED = ("model", "label", "device", "train_flops", "bits", "coding_fraction")
#: the measures drawn against compute (a panel each, where a corpus's rows have them): held-out
#: bits per token, and of the samples the gene finder's coding fraction (DNA) or the generative
#: perplexity under the run's AR model (text)
QVC_MEASURES = {"bits": "held-out bits per token (test)",
                "coding_fraction": "samples: gene-finder coding fraction",
                "gen_perplexity": "samples: generative perplexity (AR model)"}
QVC_MAX_BYTES = 16 << 20
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _qvc_text(path) -> str:
    """The table's text: UTF-8 (a byte-order mark is dropped), LF or CRLF line ends."""
    data = read_bounded(path, QVC_MAX_BYTES, "quality-against-compute table")
    if not data.strip():
        raise InputFileError(path, "empty: a quality-against-compute table has a header line "
                             "and one row per run")
    text = decode_text(path, data, "utf-8-sig",
                       "byte 0x{byte:02x} is not UTF-8 text (save the table as UTF-8)")
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        line = text[:text.index("\r")].count("\n") + 1
        raise InputFileError(path, f"line {line}: a carriage return (CR) inside a line: save "
                             "the table with LF or CRLF line ends")
    if "\x00" in text:
        raise InputFileError(path, "holds NUL bytes: not a text table")
    return text


def _qvc_number(path, line: int, col: int, key: str, value: str) -> float | None:
    if value in ("", "-"):
        return None
    if not _NUMBER.fullmatch(value):
        raise InputFileError(path, f"line {line}, column {col} ({key}): {value!r} is not a "
                             "number (or empty / -)")
    number = float(value)
    if not math.isfinite(number):
        raise InputFileError(path, f"line {line}, column {col} ({key}): {value} is out of "
                             "range")
    return number


def _qvc_check_row(path, line: int, row: dict, columns: list[str]) -> None:
    """The rules of one row: what the plot needs of it, in range."""
    def where(key):
        return f"line {line}, column {columns.index(key) + 1} ({key})"
    if row["model"] in (None, "", "-"):
        raise InputFileError(path, f"{where('model')}: empty (mdlm, ar, ... or reference)")
    for key, value in row.items():
        if value is None or key in QVC_TEXT:
            continue
        if (key.endswith("_se") or key in ("steps", "train_tokens", "train_seconds")) \
                and value < 0:
            raise InputFileError(path, f"{where(key)}: {value:g} is negative")
    if row["bits"] is not None and row["bits"] < 0:
        raise InputFileError(path, f"{where('bits')}: {row['bits']:g} bits per token is "
                             "negative")
    if row["coding_fraction"] is not None and not 0 <= row["coding_fraction"] <= 1:
        raise InputFileError(path, f"{where('coding_fraction')}: {row['coding_fraction']:g} "
                             "is not a fraction (0 to 1)")
    if row.get("gen_perplexity") is not None and row["gen_perplexity"] < 1:
        raise InputFileError(path, f"{where('gen_perplexity')}: {row['gen_perplexity']:g} is "
                             "not a perplexity (1 or more)")
    if all(row.get(m) is None for m in QVC_MEASURES):
        raise InputFileError(path, f"line {line}: none of {', '.join(QVC_MEASURES)}: nothing "
                             "to draw")
    if row["model"] == "reference":
        if row["train_flops"] is not None:
            raise InputFileError(path, f"{where('train_flops')}: a reference row has no "
                                 "training FLOPs (it is drawn as a horizontal line); leave "
                                 "the cell empty or -")
        return
    if row["device"] in (None, "", "-"):
        raise InputFileError(path, f"{where('device')}: empty (each model and device is "
                             "one line of the plot)")
    if row["train_flops"] is None or row["train_flops"] <= 0:
        value = "empty" if row["train_flops"] is None else f"{row['train_flops']:g}"
        raise InputFileError(path, f"{where('train_flops')}: {value}; a run needs its "
                             "training FLOPs (a positive number: the plot's axis is "
                             "logarithmic)")


def read_quality_vs_compute(path) -> list[dict]:
    """Rows of a quality-against-compute table (TSV, UTF-8): ``model`` (mdlm, ar, ... or
    reference), ``label``, ``device``, ``train_flops`` (positive; empty for references),
    ``bits`` and ``coding_fraction`` with ``_se`` columns, optionally ``corpus`` (text: the
    rows of one corpus share a row of panels; "" for every row of a table without it) and
    ``gen_perplexity`` (at least 1); every other column is a number too.
    Empty cells (and ``-``) become None. Cells are split at tabs only (a ``"`` is a
    character like any other); every row has the header's number of cells, every number is
    finite, and a table without a run is refused, each with the file, line and column named."""
    lines = _qvc_text(path).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    columns = [c.strip() for c in lines[0].split("\t")]
    for i, name in enumerate(columns):
        if not name:
            raise InputFileError(path, f"line 1, column {i + 1}: a column without a name")
        if name in columns[:i]:
            raise InputFileError(path, f"line 1: column {name!r} appears twice (columns "
                                 f"{columns.index(name) + 1} and {i + 1})")
    missing = [c for c in QVC_REQUIRED if c not in columns]
    if missing:
        raise InputFileError(path, f"no column(s) {', '.join(sorted(missing))}")
    rows, numbers = [], []  # numbers: each row's line in the file
    for line, text in enumerate(lines[1:], start=2):
        if not text.strip():
            continue
        cells = [c.strip() for c in text.split("\t")]
        if len(cells) != len(columns):
            raise InputFileError(path, f"line {line}: {len(cells)} cells, the header has "
                                 f"{len(columns)} (cells are separated by one tab each)")
        row = {}
        for col, (key, value) in enumerate(zip(columns, cells), start=1):
            row[key] = value if key in QVC_TEXT else _qvc_number(path, line, col, key, value)
        _qvc_check_row(path, line, row, columns)
        rows.append(row)
        numbers.append(line)
    if not any(r["model"] != "reference" for r in rows):
        raise InputFileError(path, "no run in the table (only " + ("reference rows"
                             if rows else "the header") + "): nothing to draw against "
                             "training compute")
    _qvc_check_corpora(path, rows, numbers, columns)
    return rows


def _qvc_check_corpora(path, rows: list[dict], numbers: list[int], columns: list[str]) -> None:
    """``corpus`` ("" for every row without the column; ``-`` is empty): once a row names one,
    every row must (a row of panels each), and every corpus needs a run."""
    for row in rows:
        row["corpus"] = "" if row.get("corpus") in (None, "", "-") else row["corpus"]
    names = list(dict.fromkeys(r["corpus"] for r in rows if r["corpus"]))
    if not names:
        return
    col = columns.index("corpus") + 1
    for line, row in zip(numbers, rows):
        if not row["corpus"]:
            raise InputFileError(path, f"line {line}, column {col} (corpus): empty, while other "
                                 f"rows name theirs ({', '.join(map(repr, names))}): each row "
                                 "belongs to one corpus")
    for name in names:
        if not any(r["model"] != "reference" for r in rows if r["corpus"] == name):
            raise InputFileError(path, f"corpus {name!r}: no run, only reference rows: "
                                 "nothing to draw against training compute")


def qvc_panels(rows: list[dict]) -> list[tuple[str, list[str]]]:
    """The plot's layout: ``(corpus, measures)`` per row of panels, in the table's order (one
    unnamed corpus without the column), each measure of :data:`QVC_MEASURES` that a row of the
    corpus has."""
    corpora = list(dict.fromkeys(r["corpus"] for r in rows))
    return [(c, [m for m in QVC_MEASURES
                 if any(r.get(m) is not None for r in rows if r["corpus"] == c)])
            for c in corpora]


def _plain(text: str) -> str:
    """A label as written: matplotlib would read ``$...$`` as mathematics (and fail on some)."""
    return text.replace("$", r"\$")


def plot_quality_vs_compute(rows: list[dict], out) -> None:
    """Held-out bits per token and the samples' measure (coding fraction for DNA, generative
    perplexity for text) against training FLOPs: a row of panels per ``corpus`` (one row when
    the table has no such column), one line per model and device, the reference rows (Markov
    chains, real windows) of that corpus as horizontal lines; written in the format ``out``'s
    extension names (png, svg or pdf)."""
    fmt = plot_format(out)
    panels = dict(qvc_panels(rows))
    corpora = list(panels)
    ncols = max(len(p) for p in panels.values())
    fig, grid = plt.subplots(len(corpora), ncols, figsize=(5 * ncols, 4 * len(corpora)),
                             squeeze=False, layout="constrained")
    for axes, corpus in zip(grid, corpora):
        mine_rows = [r for r in rows if r["corpus"] == corpus]
        runs = [r for r in mine_rows if r["model"] != "reference" and r["train_flops"]]
        groups = list(dict.fromkeys((r["model"], r["device"]) for r in runs))
        for ax in axes[len(panels[corpus]):]:
            ax.axis("off")
        for ax, m in zip(axes, panels[corpus]):
            for model, device in groups:
                mine = sorted((r for r in runs if (r["model"], r["device"]) == (model, device)
                               and r.get(m) is not None), key=lambda r: r["train_flops"])
                if not mine:
                    continue
                se = [r.get(m + "_se") or 0.0 for r in mine]
                ax.errorbar([r["train_flops"] for r in mine], [r[m] for r in mine], yerr=se,
                            fmt="o-" if len(mine) > 1 else "s", capsize=3,
                            label=_plain(f"{model.upper()} ({device})"))
            # references in greys and dash patterns: the runs keep the colour cycle
            for i, ref in enumerate(r for r in mine_rows if r["model"] == "reference"
                                    and r.get(m) is not None):
                ax.axhline(ref[m], color=("0.2", "0.45", "0.65")[i % 3],
                           ls=("--", ":", "-.")[i // 3 % 3], lw=1.2,
                           label=_plain(ref["label"] or "reference"))
            ax.set_xscale("log")
            ax.set_xlabel("training FLOPs")
            title = QVC_MEASURES[m]
            ax.set_title(_plain(f"{corpus}: {title}" if corpus else title), fontsize=10)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle("What compute buys: MDLM, block diffusion and AR of the same size")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
    plt.close(fig)
