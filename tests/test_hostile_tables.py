"""Hostile tables: ``bench compute-plot`` (the quality-against-compute TSV) and ``downstream
table`` (the result JSON of each task). Bad input is refused in one line naming the file (and
the line, column or entry), with no traceback and no output; odd but valid input is drawn."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest
from hostile_kit import assert_ok, assert_rejected, hostile, listing

from conftest import REPO, run_cli

TABLE = REPO / "resources" / "figures" / "quality_vs_compute.tsv"
COLUMNS = TABLE.read_text().splitlines()[0].split("\t")
ROWS = len(TABLE.read_text().splitlines()) - 1  # the committed table's rows
NEXT = f"line {ROWS + 2}"  # the first row a test appends


# ------------------------------------------------------------------------ bench compute-plot
def _row(**cells) -> str:
    """One run's row of the committed table's columns (a valid MDLM row unless told)."""
    base = {"model": "mdlm", "label": "mine", "device": "cpu", "steps": "10",
            "train_tokens": "1e5", "train_flops": "3e12", "train_seconds": "5", "bits": "1.95",
            "bits_se": "0.01", "js6": "0.02", "coding_fraction": "0.2",
            "coding_fraction_se": "0.02", "orf300": "0.3", "orf600": "0", "orf600_se": "0",
            "auroc": "0.8", "auroc_se": "0.1", "corpus": "yeast", "gen_perplexity": "",
            "unigram_entropy": "", "ar_bits": "", "passes_per_token": ""}
    base.update(cells)
    return "\t".join(base[c] for c in COLUMNS)


def _table(tmp_path, *extra_lines, text: str | None = None, name="t.tsv") -> Path:
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    body = TABLE.read_text() if text is None else text
    path.write_text(body + "".join(line + "\n" for line in extra_lines))
    return path


def _plot(table, out):
    return run_cli("bench", "compute-plot", "--table", table, "--out", out)


def _refused(tmp_path, table, *needles, out="plot.png"):
    before = listing(tmp_path)
    proc = _plot(table, tmp_path / "out" / out)
    return assert_rejected(proc, before, [tmp_path], *needles)


def _drawn(tmp_path, table, out="plot.png") -> dict:
    proc = _plot(table, tmp_path / "out" / out)
    assert_ok(proc)
    return json.loads(proc.stdout)


@hostile("rejected")
def test_compute_plot_row_with_an_extra_cell(tmp_path):
    """Item 16: was a TypeError traceback."""
    table = _table(tmp_path, _row() + "\tsurplus")
    _refused(tmp_path, table, str(table), NEXT, f"{len(COLUMNS) + 1} cells",
             f"the header has {len(COLUMNS)}")


@hostile("rejected")
@pytest.mark.parametrize("cells,needles", [
    (3, (NEXT, "3 cells")),
    (16, (NEXT, "16 cells")),
    (len(COLUMNS) - 1, (NEXT, f"{len(COLUMNS) - 1} cells")),
])
def test_compute_plot_short_row(tmp_path, cells, needles):
    table = _table(tmp_path, "\t".join(_row().split("\t")[:cells]))
    _refused(tmp_path, table, str(table), *needles)


@hostile("rejected")
@pytest.mark.parametrize("column,value,needle", [
    ("bits", "nan", "not a number"),
    ("bits", "NaN", "not a number"),
    ("coding_fraction", "inf", "not a number"),
    ("train_flops", "-Infinity", "not a number"),
    ("bits", "1e999", "out of range"),
    ("bits", "1_9", "not a number"),
    ("steps", "12abc", "not a number"),
])
def test_compute_plot_cell_that_is_not_a_finite_number(tmp_path, column, value, needle):
    table = _table(tmp_path, _row(**{column: value}))
    col = COLUMNS.index(column) + 1
    _refused(tmp_path, table, str(table), f"{NEXT}, column {col} ({column})", needle)


@hostile("rejected")
@pytest.mark.parametrize("flops,needle", [("0", ": 0;"), ("-3e12", ": -3e+12;"),
                                          ("", "empty;"), ("-", "empty;")])
def test_compute_plot_run_without_positive_flops(tmp_path, flops, needle):
    """FLOPs 0 was silently dropped from the plot; negative FLOPs were accepted."""
    table = _table(tmp_path, _row(train_flops=flops))
    _refused(tmp_path, table, str(table), NEXT, "train_flops", needle, "positive")


@hostile("rejected")
@pytest.mark.parametrize("cells,needle", [
    ({"bits_se": "-0.01"}, "(bits_se): -0.01 is negative"),
    ({"coding_fraction": "1.5"}, "not a fraction"),
    ({"bits": "-1"}, "negative"),
    ({"bits": "-", "coding_fraction": ""}, "nothing to draw"),
    ({"bits": "", "coding_fraction": "", "gen_perplexity": "0.5"}, "not a perplexity"),
    ({"model": ""}, "(model): empty"),
    ({"device": "-"}, "(device): empty"),
    ({"model": "reference"}, "a reference row has no training flops"),
])
def test_compute_plot_row_out_of_range(tmp_path, cells, needle):
    table = _table(tmp_path, _row(**cells))
    _refused(tmp_path, table, str(table), NEXT, needle)


@hostile("rejected")
def test_compute_plot_header_only_table(tmp_path):
    table = _table(tmp_path, text="\t".join(COLUMNS) + "\n")
    _refused(tmp_path, table, str(table), "no run in the table", "only the header")


@hostile("rejected")
def test_compute_plot_table_of_references_only(tmp_path):
    lines = TABLE.read_text().splitlines()
    table = _table(tmp_path, *[ln for ln in lines if ln.startswith("reference")],
                   text=lines[0] + "\n")
    _refused(tmp_path, table, str(table), "no run in the table", "only reference rows")


@hostile("rejected")
@pytest.mark.parametrize("header,needle", [
    ("\t".join(COLUMNS + ["bits"]), "column 'bits' appears twice (columns 8 and "
                                      f"{len(COLUMNS) + 1})"),
    ("\t".join(COLUMNS[:3] + [""] + COLUMNS[3:]), "line 1, column 4: a column without a name"),
    ("\t".join(c for c in COLUMNS if c != "train_flops"), "no column(s) train_flops"),
])
def test_compute_plot_bad_header(tmp_path, header, needle):
    table = _table(tmp_path, text=header + "\n" + "\n".join(TABLE.read_text().splitlines()[1:]))
    _refused(tmp_path, table, str(table), "line 1" if "line" in needle else "", needle)


@hostile("rejected")
@pytest.mark.parametrize("content,needle", [
    (TABLE.read_bytes() + _row(label="caf\xe9").encode("latin-1") + b"\n",
     f"{NEXT}: byte 0xe9 is not utf-8"),
    # after a byte-order mark: the byte was read 3 bytes early (0x63, the 'c' of caf\xe9)
    (b"\xef\xbb\xbf" + TABLE.read_bytes() + _row(label="caf\xe9").encode("latin-1") + b"\n",
     f"{NEXT}: byte 0xe9 is not utf-8"),
    (TABLE.read_text().replace("\n", "\r").encode(), "carriage return"),
    (b"", "empty"),
    (b"\n\n  \n", "empty"),
    ("\t".join(COLUMNS).encode("utf-16"), "is not utf-8"),
])
def test_compute_plot_table_that_is_not_utf8_text(tmp_path, content, needle):
    """A non-UTF-8 table's error did not name the file."""
    table = tmp_path / "in" / "t.tsv"
    table.parent.mkdir()
    table.write_bytes(content)
    _refused(tmp_path, table, str(table), needle)


@hostile("rejected")
@pytest.mark.parametrize("out", ["plot.jpg", "plot.tsv", "plot", "plot.png.txt"])
def test_compute_plot_output_format_it_cannot_write(tmp_path, out):
    """``--out p.svg`` got PNG bytes; now the extension names the format, and others are
    refused before any work."""
    table = _table(tmp_path)
    _refused(tmp_path, table, out, "the extension names the plot's format", ".png, .svg, .pdf",
             out=out)


@hostile("accepted")
@pytest.mark.parametrize("out,magic", [("plot.png", b"\x89PNG\r\n\x1a\n"),
                                       ("plot.svg", b"<?xml"), ("Plot.PDF", b"%PDF-")])
def test_compute_plot_writes_the_format_its_extension_names(tmp_path, out, magic):
    res = _drawn(tmp_path, _table(tmp_path), out)
    assert res["rows"] == ROWS
    data = (tmp_path / "out" / out).read_bytes()
    assert data.startswith(magic), data[:20]
    if out.endswith(".svg"):
        assert b"<svg" in data[:2000]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [out]


@hostile("accepted")
def test_compute_plot_utf8_bom_and_crlf(tmp_path):
    """A byte-order mark (what spreadsheet programs write) gave "no column(s) model"."""
    plain = _drawn(tmp_path, _table(tmp_path))
    table = tmp_path / "in" / "bom.tsv"
    table.write_bytes(b"\xef\xbb\xbf" + TABLE.read_text().replace("\n", "\r\n").encode())
    bom = _drawn(tmp_path, table, "bom.png")
    assert bom["rows"] == plain["rows"] == ROWS


@hostile("accepted")
def test_compute_plot_quotes_and_dollars_in_labels_are_text(tmp_path):
    """A ``"`` in a label merged rows (csv quoting); ``$...$`` was read as mathematics."""
    from dnadiff.evaluation.compute_table import read_quality_vs_compute

    lines = [_row(label='a "quoted', train_flops="1e12"),
             _row(label='end" of it', train_flops="2e12"),
             _row(model="reference", label=r"cost $\frac$ and $5", device="-", train_flops="",
                  bits="1.9")]
    table = _table(tmp_path, *lines)
    rows = read_quality_vs_compute(table)
    assert len(rows) == ROWS + 3
    assert [r["label"] for r in rows[-3:]] == ['a "quoted', 'end" of it',
                                               r"cost $\frac$ and $5"]
    assert [r["train_flops"] for r in rows[-3:]] == [1e12, 2e12, None]
    assert _drawn(tmp_path, table)["rows"] == ROWS + 3


@hostile("accepted")
def test_compute_plot_rows_of_panels_per_corpus(tmp_path):
    """The committed table holds yeast and text rows: a row of panels per corpus, each with the
    measures its rows have (coding fraction for DNA, generative perplexity for text); a table
    without the corpus column (the format before it) is one row of panels, as before."""
    from dnadiff.evaluation.compute_table import qvc_panels, read_quality_vs_compute

    rows = read_quality_vs_compute(TABLE)
    assert qvc_panels(rows) == [("yeast", ["bits", "coding_fraction"]),
                                ("tinyshakespeare", ["bits", "gen_perplexity"])]
    text = [r for r in rows if r["corpus"] == "tinyshakespeare" and r["model"] != "reference"]
    assert text and all(r["coding_fraction"] is None and r["gen_perplexity"] >= 1 for r in text)
    assert _drawn(tmp_path, _table(tmp_path))["rows"] == ROWS
    keep = [i for i, c in enumerate(COLUMNS) if c not in ("corpus", "gen_perplexity")]
    lines = [ln.split("\t") for ln in TABLE.read_text().splitlines()]
    old = "".join("\t".join(cells[i] for i in keep) + "\n" for cells in lines
                  if cells[COLUMNS.index("corpus")] in ("yeast", "corpus"))
    table = _table(tmp_path, text=old, name="old.tsv")
    assert qvc_panels(read_quality_vs_compute(table)) == [("", ["bits", "coding_fraction"])]
    assert _drawn(tmp_path, table, "old.png")["rows"] == len(lines[1:]) - len(text) - 2


@hostile("rejected")
@pytest.mark.parametrize("corpus,needle", [("", "empty, while other rows name theirs"),
                                           ("-", "empty, while other rows name theirs"),
                                           ("moss", "corpus 'moss': no run")])
def test_compute_plot_corpus_without_name_or_run(tmp_path, corpus, needle):
    """Once rows name their corpus, a row without one would be drawn apart from them (its own
    untitled panels), and a corpus of references only has nothing to draw them against."""
    row = _row(model="reference", label="a line", device="-", train_flops="", corpus=corpus)
    table = _table(tmp_path, row)
    _refused(tmp_path, table, str(table), needle, *([NEXT, "(corpus)"] if corpus != "moss"
                                                    else []))


@hostile("accepted")
def test_compute_plot_committed_table_reads_as_before(tmp_path):
    from dnadiff.evaluation.compute_table import read_quality_vs_compute

    rows = read_quality_vs_compute(TABLE)
    with open(TABLE, newline="") as fh:
        ref = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) == len(ref) == ROWS
    for mine, theirs in zip(rows, ref):
        for key, value in theirs.items():
            if key in ("model", "label", "device", "corpus"):
                assert mine[key] == value
            else:
                assert mine[key] == (None if value in ("", "-") else float(value)), key


# -------------------------------------------------------------------------- downstream table
METRICS = ("accuracy", "mcc", "auroc")


def _result(task="t1", accs=(0.8, 0.9)) -> dict:
    """A result file of ``downstream run`` as it writes them: two finetune runs and a k-mer
    one on one task."""
    rows = [{"task": task, "method": "finetune", "seed": i, "accuracy": a, "mcc": 2 * a - 1,
             "auroc": a, "val_accuracy": a, "lr": 1e-3} for i, a in enumerate(accs)]
    rows.append({"task": task, "method": "kmer", "seed": None, "accuracy": 0.75, "mcc": 0.5,
                 "auroc": 0.8, "val_accuracy": 0.7, "C": 1.0, "features": "k=1..3",
                 "scaling": "l2", "columns": [0, 84], "max_k": 3})
    summary = []
    for method in ("finetune", "kmer"):
        mine = [r for r in rows if r["method"] == method]
        s = {"task": task, "method": method, "runs": len(mine)}
        for m in METRICS:
            v = [r[m] for r in mine]
            s[m], s[f"{m}_min"], s[f"{m}_max"] = sum(v) / len(v), min(v), max(v)
        summary.append(s)
    return {"task": {"name": task, "classes": ["a", "b"]}, "protocol": "quick",
            "model": {"backbone": "dit", "parameters": "0.01M", "pretraining": "1 steps"},
            "recipes": {}, "rows": rows, "summary": summary, "checkpoint": "m.pt"}


def _write(tmp_path, name, obj) -> Path:
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _table_cli(tmp_path, *inputs):
    out = tmp_path / "out"
    return run_cli("downstream", "table", "--inputs", *inputs, "--out-tsv", out / "t.tsv",
                   "--plot", out / "t.png", "--comparison", out / "c.md")


def _table_refused(tmp_path, inputs, *needles):
    before = listing(tmp_path)
    return assert_rejected(_table_cli(tmp_path, *inputs), before, [tmp_path], *needles)


@hostile("rejected")
@pytest.mark.parametrize("summary,needle", [
    ([1, 2], "summary[0] is int, not an object"),
    ("abc", "summary: str, not a list"),
    ([{"task": "t"}], "method is null"),
    ([], "an empty summary"),
    (None, "summary: nonetype, not a list"),
])
def test_downstream_table_summary_of_the_wrong_shape(tmp_path, summary, needle):
    """Item 17: AttributeError or KeyError tracebacks."""
    res = _result()
    res["summary"] = summary
    bad = _write(tmp_path, "bad.json", res)
    _table_refused(tmp_path, [_write(tmp_path, "ok.json", _result("t0")), bad], str(bad),
                   needle)


@hostile("rejected")
@pytest.mark.parametrize("text,needle", [
    ("[1, 2]", "a json list, not an object"),
    ('"abc"', "a json str"),
    ('{"rows": []}', "summary: missing"),
    ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
    ('{"summary": [], "summary": []}', "'summary' appears twice"),
    ("{", "not a downstream result file"),
    ("\udcff", "not a downstream result file"),
])
def test_downstream_table_not_a_result_object(tmp_path, text, needle):
    bad = tmp_path / "in" / "bad.json"
    bad.parent.mkdir()
    bad.write_bytes(text.encode("utf-8", "surrogateescape"))
    _table_refused(tmp_path, [bad], str(bad), needle)


@hostile("rejected")
@pytest.mark.parametrize("edit,needle", [
    (lambda r: r["summary"][0].update(accuracy=math.nan), "summary[0] (t1 finetune): "
                                                          "accuracy is nan"),
    (lambda r: r["rows"][0].update(accuracy=math.nan), "rows[0] (t1 finetune): accuracy is nan"),
    (lambda r: r["summary"][1].update(mcc=math.inf), "mcc is inf, not a finite number"),
    (lambda r: r["summary"][1].update(accuracy_max=-math.inf), "accuracy_max is -inf"),
    (lambda r: r["summary"][1].update(accuracy=1.5, accuracy_max=1.5), "outside 0..1"),
    (lambda r: r["rows"][2].update(mcc=True), "mcc is true, not a number"),
    (lambda r: r["rows"][2].update(mcc="0.5"), "not a number"),
    (lambda r: r["summary"][0].update(accuracy=0.99), "not within its range 0.8..0.9"),
    (lambda r: r["summary"][0].update(runs=3), "runs is 3, but rows holds 2"),
    (lambda r: r["summary"][0].update(runs=True), "runs is true"),
    (lambda r: r["summary"].append(dict(r["summary"][0])), "the method appears twice"),
    (lambda r: r["summary"][1].update(task="t2"), "holds the tasks t1, t2"),
    (lambda r: r["summary"][1].update(task="a\tb"), "not a task name"),
    (lambda r: r["summary"][1].update(method="magic"), "not one of finetune"),
    (lambda r: r["rows"].append(dict(r["rows"][0], method="cnn")),
     "rows holds runs the summary does not: t1 cnn"),
    (lambda r: r["task"].update(name="other"), "task.name is \"other\""),
    (lambda r: r.update(model=[1]), "model is list"),
    (lambda r: r["model"].update(backbone="dit\n| x |"), "model.backbone"),
    (lambda r: r.update(protocol=5), "protocol is 5"),
])
def test_downstream_table_bad_entries(tmp_path, edit, needle):
    """Item 27: NaN accuracy was accepted; every metric is finite and in range, and the
    summary agrees with its runs."""
    res = _result()
    edit(res)
    bad = _write(tmp_path, "bad.json", res)
    _table_refused(tmp_path, [bad], str(bad), needle)


@hostile("rejected")
def test_downstream_table_same_input_twice(tmp_path):
    """Item 27: the same input given twice duplicated its rows."""
    one = _write(tmp_path, "one.json", _result())
    _table_refused(tmp_path, [one, one], "given twice", str(one))
    alias = one.parent / "." / "one.json"
    link = one.parent / "link.json"
    os.symlink(one, link)
    _table_refused(tmp_path, [one, link], str(link), "given twice", str(one))
    _table_refused(tmp_path, [one, alias], "given twice")


@hostile("rejected")
def test_downstream_table_two_files_of_one_task(tmp_path):
    one = _write(tmp_path, "one.json", _result())
    copy = _write(tmp_path, "copy.json", _result(accs=(0.6, 0.7)))
    _table_refused(tmp_path, [one, copy], str(copy), "task t1 is also in", str(one))


@hostile("accepted")
def test_downstream_table_reports_what_the_kmer_grid_chose(tmp_path):
    """Two tasks, one table: every summary row once, the k-mer row with its chosen features,
    scaling and C; an undefined AUROC (a one-class test split) is allowed."""
    second = _result("t2", accs=(0.5,))
    for row in second["summary"] + second["rows"]:
        row["auroc"] = math.nan
        row.update({k: math.nan for k in ("auroc_min", "auroc_max") if k in row})
    proc = _table_cli(tmp_path, _write(tmp_path, "a.json", _result()),
                      _write(tmp_path, "b.json", second))
    assert_ok(proc)
    with open(tmp_path / "out" / "t.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [(r["task"], r["method"], r["runs"]) for r in rows] == [
        ("t1", "finetune", "2"), ("t1", "kmer", "1"), ("t2", "finetune", "1"), ("t2", "kmer", "1")]
    assert float(rows[0]["accuracy"]) == pytest.approx(0.85)
    assert [r["selected"] for r in rows] == ["", "k=1..3 l2 C=1", "", "k=1..3 l2 C=1"]
    assert rows[2]["auroc"] == "nan"
    assert (tmp_path / "out" / "t.png").read_bytes()[:4] == b"\x89PNG"
