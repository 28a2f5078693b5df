"""Genotype readers and writers: PLINK .bed/.bim/.fam (via bed-reader) and CSV of 0/1/2.

Genotypes are returned as a float32 matrix ``(n_subjects, n_snps)`` of minor/A1 allele counts in
{0, 1, 2} with ``NaN`` where a call is missing; codes outside {0, 1, 2} are an error that names the
file, the subject and the SNP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fusion.data.integrity import path_problem
from fusion.errors import InputError

PathLike = str | os.PathLike


@dataclass
class Genotypes:
    """A genotype matrix with its subject and SNP identifiers.

    Attributes:
        values: ``(n_subjects, n_snps)`` float32 allele counts, ``NaN`` = missing.
        subject_ids: one id per row.
        snp_ids: one id per column.
        source: the file the matrix was read from.
        chromosome / bp_position: per-SNP annotation when the source has it.
    """

    values: np.ndarray
    subject_ids: list[str]
    snp_ids: list[str]
    source: str = ""
    chromosome: list[str] = field(default_factory=list)
    bp_position: list[int] = field(default_factory=list)

    def select(self, subject_ids: list[str], what: str = "genotype file") -> np.ndarray:
        """Rows for ``subject_ids`` in that order; a subject absent from the file is an error."""
        position = {sid: k for k, sid in enumerate(self.subject_ids)}
        missing = [sid for sid in subject_ids if sid not in position]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise InputError(
                f"{len(missing)} subject(s) missing from the {what} {self.source}: {shown} "
                f"(subject ids must match the manifest's subject_id column)"
            )
        return self.values[[position[sid] for sid in subject_ids]]


def check_unique_ids(subject_ids: list[str], source: str) -> None:
    """Raise InputError naming a subject that appears more than once in a genotype file."""
    seen: set[str] = set()
    for sid in subject_ids:
        if sid in seen:
            raise InputError(f"{source}: subject {sid!r} appears {subject_ids.count(sid)} times; expected one "
                             "row per subject (which one holds the right genotypes?)")
        seen.add(sid)


def validate_codes(values: np.ndarray, subject_ids: list[str], snp_ids: list[str], source: str) -> None:
    """Raise InputError naming the first subject/SNP whose code is not 0, 1, 2 or missing."""
    finite = np.isfinite(values)
    bad = finite & ~np.isin(values, (0.0, 1.0, 2.0))
    bad |= np.isinf(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(
            f"{source}: subject {subject_ids[i]!r}, SNP {snp_ids[j]!r} has genotype code {float(values[i, j]):g}; "
            f"expected 0, 1, 2 or missing ({int(bad.sum())} bad value(s) in total)"
        )


PLINK_MAGIC = b"\x6c\x1b"  # the .bed's first two bytes; the third is 1 for SNP-major order


def _plink_text_rows(path: Path, n_fields: int, what: str) -> int:
    """Number of rows of a ``.bim`` / ``.fam``; a row without ``n_fields`` fields is an error naming its line."""
    n = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != n_fields:
                raise InputError(f"PLINK {what} file {path}, line {line_number}: {len(fields)} field(s); expected "
                                 f"{n_fields} (whitespace-separated)")
            n += 1
    if n == 0:
        raise InputError(f"PLINK {what} file {path} has no rows; expected one line per "
                         f"{'SNP' if what == '.bim' else 'individual'}")
    return n


def check_plink_set(bed: Path) -> tuple[int, int]:
    """Check that a PLINK set's three files agree, and name the file at fault when they do not.

    A SNP-major ``.bed`` holds 3 header bytes then, per SNP of the ``.bim``, ceil(n/4) bytes for
    the n individuals of the ``.fam``. When the size disagrees, the count that explains the size
    exactly is blamed: the ``.bim`` if the size is a whole number of SNP rows for the ``.fam``'s
    individuals, else the ``.fam`` if it is a whole row length for the ``.bim``'s SNPs, else the
    ``.bed`` itself (cut or corrupt).

    Returns:
        ``(n_individuals, n_snps)``.
    """
    bim, fam = bed.with_suffix(".bim"), bed.with_suffix(".fam")
    n_snps = _plink_text_rows(bim, 6, ".bim")
    n_ind = _plink_text_rows(fam, 6, ".fam")
    with open(bed, "rb") as f:
        head = f.read(3)
    if head[:2] != PLINK_MAGIC:
        raise InputError(f"PLINK .bed file {bed} does not start with the PLINK magic bytes 0x6c 0x1b (got "
                         f"{head[:2].hex(' ') or 'nothing'}); expected a PLINK 1 binary genotype file")
    if head[2:3] != b"\x01":
        raise InputError(f"PLINK .bed file {bed} is not in SNP-major order (mode byte {head[2:3].hex() or 'missing'}, "
                         "expected 01); convert it with plink --make-bed")
    size = bed.stat().st_size
    row = (n_ind + 3) // 4
    expected = 3 + n_snps * row
    if size == expected:
        return n_ind, n_snps
    body = size - 3
    if body > 0 and body % row == 0 and body % n_snps == 0 and body // n_snps != row:
        per_snp = body // n_snps
        raise InputError(
            f"PLINK .bim file {bim} ({n_snps} SNPs) or .fam file {fam} ({n_ind} individuals) does not belong to "
            f"{bed} ({size} bytes): it holds either {body // row} SNP(s) for these individuals or "
            f"{4 * per_snp - 3}-{4 * per_snp} individuals for these SNPs; expected the three files of one set")
    if body > 0 and body % row == 0:
        raise InputError(
            f"PLINK .bim file {bim} lists {n_snps} SNP(s), but {bed} holds genotypes of {body // row} SNP(s) for the "
            f"{n_ind} individual(s) of {fam}; expected one .bim line per SNP of the .bed (a .bim of another set?)")
    if body > 0 and body % n_snps == 0:
        per_snp = body // n_snps
        raise InputError(
            f"PLINK .fam file {fam} lists {n_ind} individual(s), but {bed} holds {per_snp} byte(s) per SNP for the "
            f"{n_snps} SNP(s) of {bim}, i.e. {4 * per_snp - 3}-{4 * per_snp} individuals; expected one .fam line per "
            "individual of the .bed (a .fam of another set?)")
    raise InputError(
        f"PLINK .bed file {bed} has {size} bytes; expected {expected} (3 + {n_snps} SNPs of {bim} x {row} bytes "
        f"for the {n_ind} individuals of {fam}): the .bed is truncated or corrupt")


def read_plink(path: PathLike) -> Genotypes:
    """Read a PLINK set given its ``.bed`` path (or the prefix without extension).

    Individuals are identified by the ``.fam`` IID; counts are of allele A1 (PLINK's convention).
    """
    from bed_reader import open_bed

    path = Path(path)
    bed = path if path.suffix == ".bed" else path.with_name(path.name + ".bed")
    for ext in (".bed", ".bim", ".fam"):
        part = bed.with_suffix(ext)
        problem = path_problem(part)
        if problem is not None:
            raise InputError(f"PLINK genotype set {bed.with_suffix('')}: file {part} {problem}")
    check_plink_set(bed)
    try:
        with open_bed(bed, num_threads=1) as reader:
            values = reader.read(dtype="float32")
            subject_ids = [str(s) for s in reader.iid]
            snp_ids = [str(s) for s in reader.sid]
            chromosome = [str(c) for c in reader.chromosome]
            bp = [int(b) for b in reader.bp_position]
    except InputError:
        raise
    except Exception as err:  # bed-reader raises plain exceptions on malformed files
        raise InputError(f"cannot read PLINK genotype set {bed}: {err}") from err
    check_unique_ids(subject_ids, str(bed))
    validate_codes(values, subject_ids, snp_ids, str(bed))
    return Genotypes(values, subject_ids, snp_ids, str(bed), chromosome, bp)


def read_genotype_csv(path: PathLike, id_column: str = "subject_id") -> Genotypes:
    """Read a CSV with a subject id column and one column per SNP (0/1/2, empty or NA = missing)."""
    import pandas as pd

    path = Path(path)
    problem = path_problem(path)
    if problem is not None:
        raise InputError(f"genotype CSV {path} {problem}")
    try:
        frame = pd.read_csv(path, dtype={id_column: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"genotype CSV {path} is not a readable CSV ({err}); expected a {id_column!r} column and "
                         "one column of 0/1/2 per SNP") from err
    if id_column not in frame.columns:
        raise InputError(f"genotype CSV {path}: no {id_column!r} column (columns: {list(frame.columns)[:5]} ...)")
    snp_ids = [str(c) for c in frame.columns if c != id_column]
    if not snp_ids:
        raise InputError(f"genotype CSV {path}: no SNP columns besides {id_column!r}")
    subject_ids = frame[id_column].astype(str).tolist()
    raw = frame[snp_ids]
    values = raw.apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float32")
    # Text that is not a number (e.g. "AA") must not silently become missing.
    nonnum = raw.notna().to_numpy() & np.isnan(values)
    if nonnum.any():
        i, j = np.argwhere(nonnum)[0]
        raise InputError(
            f"{path}: subject {subject_ids[i]!r}, SNP {snp_ids[j]!r} has genotype code {raw.iat[i, j]!r}; "
            f"expected 0, 1, 2 or missing"
        )
    check_unique_ids(subject_ids, f"genotype CSV {path}")
    validate_codes(values, subject_ids, snp_ids, str(path))
    return Genotypes(values, subject_ids, snp_ids, str(path))


def read_genotypes(path: PathLike) -> Genotypes:
    """Read a genotype set by extension: ``.bed`` (PLINK, with .bim/.fam beside it) or ``.csv``."""
    path = Path(path)
    if path.suffix == ".csv":
        return read_genotype_csv(path)
    if path.suffix in (".bed", "") or path.with_name(path.name + ".bed").is_file():
        return read_plink(path)
    raise InputError(f"genotype file {path}: unknown format (expected .bed or .csv)")


def write_plink(
    path: PathLike,
    values: np.ndarray,
    subject_ids: list[str],
    snp_ids: list[str],
    chromosome: list[str] | None = None,
    bp_position: list[int] | None = None,
) -> Path:
    """Write a PLINK .bed/.bim/.fam set (counts of allele A1; ``NaN`` or -127 = missing).

    Each of the three files is written to a temporary name and renamed into place.
    """
    from bed_reader import to_bed

    from fusion.io import atomic_path

    bed = Path(path).with_suffix(".bed")
    values = np.asarray(values)
    n, p = values.shape
    props: dict[str, list] = {
        "fid": list(subject_ids),
        "iid": list(subject_ids),
        "sid": list(snp_ids),
    }
    if chromosome is not None:
        props["chromosome"] = [str(c) for c in chromosome]
    if bp_position is not None:
        props["bp_position"] = [int(b) for b in bp_position]
    vals = values.astype("float32") if values.dtype.kind == "f" else values.astype("int8")
    with atomic_path(bed, suffix=".bed") as tb, atomic_path(bed.with_suffix(".bim"), suffix=".bim") as tbim, \
            atomic_path(bed.with_suffix(".fam"), suffix=".fam") as tfam:
        to_bed(tb, vals, properties=props, fam_filepath=tfam, bim_filepath=tbim, num_threads=1)
    return bed


def impute_genotypes(values: np.ndarray, train: np.ndarray, strategy: str = "mode",
                     snp_ids: list[str] | None = None) -> np.ndarray:
    """Fill missing calls with a per-SNP statistic computed on the TRAINING rows only.

    Args:
        values: ``(n_subjects, n_snps)`` with ``NaN`` for missing.
        train: row indices of the training subjects.
        strategy: ``"mode"`` (most frequent code; ties -> the smaller code), ``"mean"`` (mean
            dosage), ``"zero"`` or ``"error"`` (refuse any missing call).

    Returns:
        A float32 copy without NaN.
    """
    values = np.asarray(values, dtype="float32")
    missing = np.isnan(values)
    if not missing.any():
        return values.copy()
    names = snp_ids or [f"column {j}" for j in range(values.shape[1])]
    if strategy == "error":
        i, j = np.argwhere(missing)[0]
        raise InputError(f"genotypes: {int(missing.sum())} missing call(s) (first: row {i}, SNP {names[j]!r}) "
                         f"and imputation is 'error'")
    out = values.copy()
    if strategy == "zero":
        out[missing] = 0.0
        return out
    tr = values[np.asarray(train)]
    cols = np.flatnonzero(missing.any(axis=0))
    for j in cols:
        col = tr[:, j]
        col = col[~np.isnan(col)]
        if col.size == 0:
            raise InputError(f"genotypes: SNP {names[j]!r} has no call in any training subject; cannot impute")
        if strategy == "mode":
            counts = np.bincount(col.astype(int), minlength=3)
            fill = float(np.argmax(counts))
        elif strategy == "mean":
            fill = float(col.mean())
        else:
            from fusion.errors import ConfigError

            raise ConfigError(f"imputation must be 'mode', 'mean', 'zero' or 'error', got {strategy!r}")
        out[missing[:, j], j] = fill
    return out
