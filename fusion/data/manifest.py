"""Read and validate a VAE cohort manifest (``subject_id,label,icn_path,smri_path[,covariates...]``),
comma-separated (``.csv``) or tab-separated (``.tsv``, as BIDS writes ``participants.tsv``).

Every problem is reported as an :class:`~fusion.errors.InputError` that names the manifest line,
the subject, the field or file, and what was expected. Problems found in one pass over the rows
(missing values, unknown labels, duplicate ids, missing files) are collected and reported
together, the first :data:`MAX_REPORTED` of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fusion.data.integrity import path_problem
from fusion.errors import InputError

REQUIRED_COLUMNS: tuple[str, ...] = ("subject_id", "label", "icn_path", "smri_path")
LABELS: dict[str, int] = {"0": 0, "1": 1, "control": 0, "patient": 1}
MAX_REPORTED: int = 10
# A subject id becomes a file name (``<subject_id>.npy``): keep it portable and path-free.
_SUBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ManifestEntry:
    """One subject of a manifest, with its paths resolved.

    Args:
        subject_id: the subject's id (safe as a file name).
        label: 0 = control, 1 = patient.
        icn_path: 4D ICN NIfTI ``(X, Y, Z, n_icn)``.
        smri_path: 3D sMRI gray-matter NIfTI, any grid.
        line: line of the manifest this subject was read from (the header is line 1).
        covariates: the row's other columns, as strings.
    """

    subject_id: str
    label: int
    icn_path: Path
    smri_path: Path
    line: int
    covariates: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VAEManifest:
    """A validated manifest: its path and its subjects in file order."""

    path: Path
    entries: tuple[ManifestEntry, ...]
    covariate_columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def subject_ids(self) -> list[str]:
        return [e.subject_id for e in self.entries]

    @property
    def labels(self) -> np.ndarray:
        return np.array([e.label for e in self.entries], dtype=np.int64)

    def covariates(self) -> pd.DataFrame:
        """Covariate columns (strings) indexed like the entries."""
        return pd.DataFrame([e.covariates for e in self.entries], columns=list(self.covariate_columns))


def raise_collected(problems: list[str], what: str) -> None:
    """Raise one InputError listing the first MAX_REPORTED ``problems`` (no-op when empty)."""
    if not problems:
        return
    shown = problems[:MAX_REPORTED]
    more = len(problems) - len(shown)
    text = f"{what}: {len(problems)} problem(s):\n  - " + "\n  - ".join(shown)
    if more:
        text += f"\n  ... and {more} more"
    raise InputError(text)


def parse_label(value: str) -> int | None:
    """``0``/``1``/``control``/``patient`` (case-insensitive) -> 0/1; anything else -> None."""
    return LABELS.get(str(value).strip().lower())


def relative_paths_message(manifest: Path, relative: list[tuple[int, str, Path]]) -> str:
    """The error for a manifest none of whose relative paths exist beside it (moved or copied alone)."""
    line, value, resolved = relative[0]
    cwd = Path.cwd()
    found = sum((cwd / v).expanduser().exists() for _, v, _ in relative)
    hint = (f"; {found} of them exist relative to the current directory {cwd}, which is not where "
            "relative paths are looked up" if found else "")
    return (f"manifest {manifest}: none of its {len(relative)} relative file path(s) exists relative to the "
            f"manifest's folder {manifest.parent.resolve()} (line {line}: {value!r} -> {resolved}){hint}; "
            "relative paths are resolved against the manifest's folder: keep the manifest beside its files "
            "or write absolute paths")


def manifest_separator(path: Path) -> str:
    """The field separator of a manifest: tab for ``.tsv`` (BIDS ``participants.tsv`` style),
    comma for ``.csv``; for another suffix, tab when the header has tabs and no commas."""
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return "\t"
    if suffix == ".csv":
        return ","
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
    return "\t" if "\t" in header and "," not in header else ","


def read_table(path: Path, expected: str, **kwargs) -> pd.DataFrame:
    """Read a manifest (CSV or TSV, see :func:`manifest_separator`) with column names stripped.

    Args:
        path: the manifest.
        expected: what the file should hold, appended to every error (``"expected ..."``).
        kwargs: passed to :func:`pandas.read_csv`.

    Raises:
        InputError: the path is not a readable file (missing, a directory, a link loop ...), is
            empty or cannot be parsed.
    """
    problem = path_problem(path)
    if problem is not None:
        raise InputError(f"manifest {path} {problem}; {expected}")
    if path.stat().st_size == 0:
        raise InputError(f"manifest {path} is empty (0 bytes); {expected} and one row per subject")
    sep = manifest_separator(path)
    kind = "TSV" if sep == "\t" else "CSV"
    try:
        frame = pd.read_csv(path, sep=sep, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"manifest {path} is not a readable {kind} ({err}); {expected}") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _resolve(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def read_manifest(path: str | Path, check_files: bool = True) -> VAEManifest:
    """Read a VAE manifest and check its columns, ids, labels and (optionally) its files.

    Args:
        path: the manifest, comma-separated (``.csv``) or tab-separated (``.tsv``). Relative file
            paths in it are resolved against its folder.
        check_files: also check that every ICN and sMRI file exists and is a readable file
            (a directory, a symbolic-link loop or a broken link each get their own message).

    Raises:
        InputError: listing every problem found (the first ten), each naming the manifest line,
            the subject and the field or file.
    """
    path = Path(path)
    expected = f"expected a CSV or TSV with columns {', '.join(REQUIRED_COLUMNS)}"
    frame = read_table(path, expected, dtype=str, keep_default_na=False, skipinitialspace=True)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"manifest {path} lacks column(s) {missing}; found {list(frame.columns)}, "
                         f"expected {', '.join(REQUIRED_COLUMNS)}[,covariates...]")
    duplicated_columns = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated_columns:
        raise InputError(f"manifest {path} has duplicate column(s) {duplicated_columns}")
    if frame.empty:
        raise InputError(f"manifest {path} has no subjects (only a header); expected one row per subject")

    base = path.parent
    covariate_columns = tuple(c for c in frame.columns if c not in REQUIRED_COLUMNS)
    problems: list[str] = []
    seen: dict[str, int] = {}
    entries: list[ManifestEntry] = []
    relative: list[tuple[int, str, Path]] = []  # (line, value, resolved) of relative paths
    missing_relative = 0
    for row_number, row in enumerate(frame.to_dict("records")):
        line = row_number + 2
        subject_id = str(row["subject_id"]).strip()
        where = f"line {line} (subject {subject_id!r})" if subject_id else f"line {line}"
        bad = False
        if not subject_id:
            problems.append(f"line {line}: subject_id is empty; expected an id")
            bad = True
        elif not _SUBJECT_ID.match(subject_id):
            problems.append(f"{where}: subject_id {subject_id!r} is not usable as a file name; expected letters, "
                            "digits, '.', '_' or '-' (starting with a letter or digit)")
            bad = True
        elif subject_id in seen:
            problems.append(f"{where}: duplicate subject_id {subject_id!r} (first on line {seen[subject_id]}); "
                            "expected one row per subject")
            bad = True
        else:
            seen[subject_id] = line
        raw_label = str(row["label"]).strip()
        label = parse_label(raw_label)
        if not raw_label:
            problems.append(f"{where}: label is missing; expected 0/1 or control/patient")
            bad = True
        elif label is None:
            problems.append(f"{where}: unknown label {raw_label!r}; expected 0/1 or control/patient (any case)")
            bad = True
        files = {}
        for column in ("icn_path", "smri_path"):
            value = str(row[column]).strip()
            if not value:
                problems.append(f"{where}: {column} is empty; expected a NIfTI path")
                bad = True
                continue
            resolved = _resolve(value, base)
            is_relative = not Path(value).expanduser().is_absolute()
            if is_relative:
                relative.append((line, value, resolved))
            problem = path_problem(resolved) if check_files else None
            if problem is not None:
                problems.append(f"{where}: {column} file {resolved} {problem}")
                missing_relative += is_relative and problem == "does not exist"
                bad = True
            files[column] = resolved
        if not bad and label is not None:  # a None label has set bad
            entries.append(ManifestEntry(
                subject_id=subject_id, label=int(label), icn_path=files["icn_path"],
                smri_path=files["smri_path"], line=line,
                covariates={c: str(row[c]) for c in covariate_columns},
            ))
    if check_files and relative and missing_relative == len(relative):
        raise InputError(relative_paths_message(path, relative))
    raise_collected(problems, f"manifest {path}")
    return VAEManifest(path=path.resolve(), entries=tuple(entries), covariate_columns=covariate_columns)
