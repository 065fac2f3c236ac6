"""Single-nucleotide variants: read from a VCF (plain or bgzip, with pysam) and checked against
a reference genome, or written to a VCF.

What :func:`read_snvs` accepts and what it refuses, each refusal one :class:`InputFileError`
naming the file and the record (``record 3 (c1:300 v3)``, records counted from 1):

- **multi-allelic records are split**: one variant per ALT allele, with the record's CHROM, POS,
  ID and INFO (as ``bcftools norm -m-`` splits them);
- **indels and structural variants are refused, with their count** (REF or ALT longer than one
  base, symbolic ``<DEL>`` alleles, breakends, ``*``, a missing ALT): only single-nucleotide
  variants are scored (``bcftools view -v snps`` keeps them);
- REF and ALT must be bases of the tokenizer (A, C, G, T; lower case is read as upper case);
- the contig must be in the reference, POS inside it, and REF the reference's base there (the
  message names the variant and the base the reference has);
- a malformed or truncated VCF, an empty file, a ``.gz`` that is plain gzip rather than bgzip
  (htslib reads BGZF blocks only), and other compressed or archived formats are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnadiff.data.fasta import GZIP_MAGIC, MAGIC_BYTES, read_sequences, refuse_foreign
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.io import atomic_open


@dataclass(frozen=True)
class SNV:
    """One single-nucleotide variant: ``pos`` is 1-based (as in a VCF), ``ref``/``alt`` one
    base each (plus strand); ``record``: the VCF record it came from (1-based; 0: not from a
    file); ``info``: the record's INFO field as written."""

    chrom: str
    pos: int
    ref: str
    alt: str
    id: str = "."
    info: str = "."
    record: int = 0

    def describe(self) -> str:
        """``record 3 (c1:300 v3 A>G)``, or ``variant c1:300 A>G`` when not from a file."""
        name = f"{self.chrom}:{self.pos}" + (f" {self.id}" if self.id not in ("", ".") else "")
        if self.record:
            return f"record {self.record} ({name} {self.ref}>{self.alt})"
        return f"variant {name} {self.ref}>{self.alt}"


def read_reference(path, tokenizer) -> dict[str, np.ndarray]:
    """Every record of a FASTA or GenBank file as token ids (``read_sequences``: a character
    outside the alphabet is one error naming the record)."""
    return {name: ids for name, _, ids in read_sequences(path, tokenizer)}


def snv_problem(snv: SNV, reference: dict[str, np.ndarray], ref_name, bases: str) -> str | None:
    """Why ``snv`` cannot be scored against ``reference`` (named ``ref_name``), or ``None``:
    alleles that are not single bases of ``bases``, an unknown contig, a position outside it, a
    REF that is not the reference's base."""
    for what, allele in (("REF", snv.ref), ("ALT", snv.alt)):
        if len(allele) != 1 or allele not in bases:
            return (f"{snv.describe()}: {what} {allele!r} is not one of the bases "
                    f"{', '.join(bases)}")
    if snv.ref == snv.alt:
        return f"{snv.describe()}: ALT is the same base as REF"
    seq = reference.get(snv.chrom)
    if seq is None:
        shown = ", ".join(list(reference)[:5]) + (", ..." if len(reference) > 5 else "")
        return f"{snv.describe()}: contig {snv.chrom!r} is not in the reference {ref_name} " \
               f"(its contigs: {shown})"
    if not 1 <= snv.pos <= len(seq):
        return (f"{snv.describe()}: position {snv.pos} lies outside {snv.chrom} (length "
                f"{len(seq)}) in the reference {ref_name}")
    return None


def check_ref_bases(snvs: list[SNV], reference: dict[str, np.ndarray], ref_name, tokenizer,
                    source=None) -> None:
    """Every SNV scorable against ``reference``, its REF the reference's base; else one error
    (an :class:`InputFileError` naming ``source`` when the SNVs come from a file)."""
    bases = tokenizer.decode(tokenizer.generable_ids)
    for snv in snvs:
        problem = snv_problem(snv, reference, ref_name, bases)
        if problem is None:
            have = tokenizer.decode(reference[snv.chrom][snv.pos - 1: snv.pos])
            if have != snv.ref:
                problem = (f"{snv.describe()}: REF {snv.ref} does not match the reference "
                           f"{ref_name}, which has {have} at {snv.chrom}:{snv.pos}")
        if problem:
            raise InputFileError(source, problem) if source else DnadiffError(problem)


def _is_bgzf(head: bytes) -> bool:
    """A gzip member with the BGZF extra field ('BC'), as bgzip and htslib write them."""
    return len(head) >= 18 and head[3] & 4 and head[12:14] == b"BC"


def _open(path: Path):
    """The file opened by pysam, after the checks htslib's own words would be cryptic for."""
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, "is a directory, expected a VCF file")
    with open(path, "rb") as fh:
        head = fh.read(MAGIC_BYTES)
    if not head:
        raise InputFileError(path, "is empty: no VCF header")
    refuse_foreign(path, head)
    if head.startswith(GZIP_MAGIC) and not _is_bgzf(head):
        raise InputFileError(path, "is gzip-compressed but not with bgzip (BGZF blocks), which "
                                   "htslib needs: recompress it (gunzip -c FILE | bgzip > "
                                   "FILE.gz) or decompress it")
    import pysam  # here: reading a VCF is the only use, and the import takes a while

    pysam.set_verbosity(0)  # htslib's warnings would go to stderr beside our one line
    try:
        return pysam.VariantFile(str(path))
    except (OSError, ValueError) as exc:
        reason = str(exc).split(";")[0].strip() or type(exc).__name__
        if "EOF marker" in reason:
            reason = "truncated bgzip (its end-of-file block is missing)"
        elif "invalid file" in reason:
            reason = "no VCF header (##fileformat=VCFv4.x, then the #CHROM line)"
        raise InputFileError(path, f"not a readable VCF: {reason}") from None


def read_snvs(path, reference: dict[str, np.ndarray], ref_name, tokenizer) -> list[SNV]:
    """The single-nucleotide variants of the VCF ``path`` (multi-allelic records split, one per
    ALT), checked against ``reference`` (token ids per contig, from ``ref_name``); see the
    module's docstring for what is refused."""
    path = Path(path)
    bases = tokenizer.decode(tokenizer.generable_ids)
    snvs, others = [], []
    n, last = 0, None
    vf = _open(path)
    try:
        for rec in vf:
            n += 1
            fields = str(rec).rstrip("\n").split("\t")
            info = fields[7] if len(fields) > 7 else "."
            ref = rec.ref.upper()
            for alt in rec.alts or (".",):
                snv = SNV(rec.chrom, rec.pos, ref, alt.upper(), rec.id or ".", info, n)
                if len(ref) != 1 or len(alt) != 1 or alt in ".*":
                    others.append(snv)
                    continue
                check_ref_bases([snv], reference, ref_name, tokenizer, path)
                snvs.append(snv)
            last = f"{rec.chrom}:{rec.pos}"
    except (OSError, ValueError) as exc:
        after = f" (after {last})" if last else ""
        reason = str(exc).split(";")[0].strip() or type(exc).__name__
        raise InputFileError(path, f"record {n + 1}{after}: malformed or truncated VCF "
                                   f"({reason})") from None
    finally:
        vf.close()
    if others:
        raise InputFileError(path, f"{len(others)} allele(s) are not single-nucleotide variants "
                                   f"(indels, structural variants or no ALT; the first: "
                                   f"{others[0].describe()}): only SNVs of the bases "
                                   f"{', '.join(bases)} are scored; keep them with "
                                   "bcftools view -v snps")
    if not snvs:
        raise InputFileError(path, "has no variant records")
    return snvs


def write_vcf(path, snvs: list[SNV], contigs: dict[str, int], info_lines=(),
              source: str = "dnadiff") -> None:
    """Write ``snvs`` as a VCF 4.2 (atomically), sorted by contig (in the order of
    ``contigs``, name -> length) and position; ``info_lines``: the ``##INFO=<...>`` header
    lines that describe the INFO fields."""
    order = {name: i for i, name in enumerate(contigs)}
    with atomic_open(path) as fh:
        fh.write(f"##fileformat=VCFv4.2\n##source={source}\n")
        for name, length in contigs.items():
            fh.write(f"##contig=<ID={name},length={length}>\n")
        for line in info_lines:
            fh.write(line.rstrip("\n") + "\n")
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for s in sorted(snvs, key=lambda s: (order[s.chrom], s.pos, s.alt)):
            fh.write(f"{s.chrom}\t{s.pos}\t{s.id}\t{s.ref}\t{s.alt}\t.\t.\t{s.info}\n")
