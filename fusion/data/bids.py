"""A VAE manifest from a BIDS-derivatives folder and its ``participants.tsv``.

Layout read (BIDS derivatives: one folder per subject, optional sessions, a datatype folder)::

    DERIVATIVES_DIR/
      participants.tsv                     (or in the BIDS root above: see find_participants)
      sub-01/[ses-1/]func/sub-01_[...]_components.nii.gz      4D ICN maps (X, Y, Z, 53)
      sub-01/[ses-1/]anat/sub-01_[...]_label-GM_probseg.nii.gz 3D gray-matter map (any grid)

Each file is found by a glob pattern relative to ``DERIVATIVES_DIR`` in which ``{subject}``
stands for the participant label (``01`` for ``sub-01``); ``**`` matches any folders (sessions),
none included. The defaults are :data:`ICN_PATTERN` and :data:`SMRI_PATTERN` (fMRIPrep names its
gray-matter maps ``..._label-GM_probseg.nii.gz``; an ICA tool's ``..._components.nii.gz``). A
pattern must match exactly one file per subject: several matches (two sessions, a native and an
MNI-space map) are an error that lists them, so a narrower pattern (``..._space-MNI152NLin6Asym_*``,
``ses-1``) chooses. No pybids: the layout is read with :meth:`pathlib.Path.glob`.

Labels come from one column of ``participants.tsv`` (``group`` by default, as in the BIDS
specification's example; ``diagnosis`` etc. with ``label_column``); its values are mapped to
0 (control) / 1 (patient) by ``control_values`` / ``patient_values``. The other columns (age,
sex, ...) become covariates of the manifest.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fusion.data.manifest import LABELS, REQUIRED_COLUMNS, raise_collected
from fusion.errors import ConfigError, InputError

log = logging.getLogger(__name__)

ICN_PATTERN = "sub-{subject}/**/func/sub-{subject}_*components.nii*"
SMRI_PATTERN = "sub-{subject}/**/anat/sub-{subject}_*label-GM_probseg.nii*"
PARTICIPANTS = "participants.tsv"
MISSING_VALUES = ("", "n/a", "na", "nan")  # BIDS writes n/a for a missing value
_LABEL = re.compile(r"^[A-Za-z0-9]+$")  # a BIDS label: alphanumeric


@dataclass
class BIDSManifest:
    """What :func:`bids_manifest` found.

    Attributes:
        table: the manifest rows (``subject_id,label,icn_path,smri_path,covariates...``), paths absolute.
        participants: the ``participants.tsv`` read.
        skipped: subject id -> why it was left out (only with ``skip_incomplete`` / ``skip_unlabelled``).
        unlisted: ``sub-*`` folders of the derivatives that ``participants.tsv`` does not list.
    """

    table: pd.DataFrame
    participants: Path
    skipped: dict[str, str] = field(default_factory=dict)
    unlisted: list[str] = field(default_factory=list)


def find_participants(derivatives: Path) -> Path:
    """``participants.tsv`` in ``derivatives``, else in its parent or grandparent (the BIDS root of
    ``<root>/derivatives/<pipeline>``)."""
    for folder in (derivatives, derivatives.parent, derivatives.parent.parent):
        if (folder / PARTICIPANTS).is_file():
            return folder / PARTICIPANTS
    raise InputError(f"no {PARTICIPANTS} in {derivatives} or the two folders above it; give its path "
                     "(--participants); expected a tab-separated file with a participant_id column")


def _label_map(control_values: list[str] | None, patient_values: list[str] | None) -> dict[str, int]:
    if control_values is None and patient_values is None:
        return dict(LABELS)
    mapping = {str(v).strip().lower(): 0 for v in (control_values or [])}
    for value in patient_values or []:
        key = str(value).strip().lower()
        if key in mapping:
            raise ConfigError(f"label value {value!r} is given both as a control and as a patient value")
        mapping[key] = 1
    if 0 not in mapping.values() or 1 not in mapping.values():
        raise ConfigError("give both the control values and the patient values (e.g. --control HC --patient SZ)")
    return mapping


def _match(derivatives: Path, pattern: str, label: str) -> list[Path]:
    # Path.glob needs a relative pattern; the label is escaped (it is alphanumeric anyway).
    return sorted(p for p in derivatives.glob(pattern.format(subject=glob.escape(label))) if p.is_file())


def bids_manifest(
    derivatives: str | os.PathLike,
    participants: str | os.PathLike | None = None,
    label_column: str = "group",
    control_values: list[str] | None = None,
    patient_values: list[str] | None = None,
    icn_pattern: str = ICN_PATTERN,
    smri_pattern: str = SMRI_PATTERN,
    skip_incomplete: bool = False,
    skip_unlabelled: bool = False,
) -> BIDSManifest:
    """Find every participant's ICN and gray-matter files and label; see the module docstring.

    Args:
        derivatives: the BIDS-derivatives folder (``sub-*`` folders inside).
        participants: ``participants.tsv``; default: found by :func:`find_participants`.
        label_column: the column of ``participants.tsv`` holding the group.
        control_values, patient_values: the column's values meaning control / patient (any
            case); default: ``0``/``control`` and ``1``/``patient``.
        icn_pattern, smri_pattern: glob patterns relative to ``derivatives``; ``{subject}`` is the
            participant label.
        skip_incomplete: leave out (and report) a participant without exactly one file per
            pattern instead of failing.
        skip_unlabelled: leave out a participant whose label is missing (``n/a``) instead of failing.

    Raises:
        InputError: naming the participant, the column or the pattern, and what was expected.
    """
    derivatives = Path(derivatives)
    if not derivatives.is_dir():
        raise InputError(f"BIDS derivatives folder {derivatives} is not a folder")
    for name, pattern in (("icn_pattern", icn_pattern), ("smri_pattern", smri_pattern)):
        if "{subject}" not in pattern or Path(pattern).is_absolute():
            raise ConfigError(f"{name} {pattern!r} must be relative to the derivatives folder and contain "
                              "{subject} (the participant label)")
    path = Path(participants) if participants is not None else find_participants(derivatives)
    from fusion.data.manifest import read_table

    frame = read_table(path, "expected a participants.tsv with a participant_id column", dtype=str,
                       keep_default_na=False)
    for column in ("participant_id", label_column):
        if column not in frame.columns:
            raise InputError(f"{path}: no column {column!r} (columns: {list(frame.columns)}); "
                             + ("set the label column (--label-column)" if column == label_column else
                                "expected BIDS participant ids (sub-<label>)"))
    mapping = _label_map(control_values, patient_values)
    accepted = sorted({k for k in mapping})
    covariates = [c for c in frame.columns if c not in ("participant_id", label_column)]
    clashes = [c for c in covariates if c in REQUIRED_COLUMNS]
    if clashes:
        log.warning("%s: column(s) %s are manifest column names and are not copied as covariates", path, clashes)
        covariates = [c for c in covariates if c not in clashes]

    rows: list[dict[str, object]] = []
    problems: list[str] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    for line, record in enumerate(frame.to_dict("records"), start=2):
        pid = str(record["participant_id"]).strip()
        where = f"{path} line {line} ({pid!r})"
        label_text = pid[4:] if pid.startswith("sub-") else ""
        if not _LABEL.match(label_text):
            problems.append(f"{where}: participant_id {pid!r} is not sub-<label> with an alphanumeric label")
            continue
        if pid in seen:
            problems.append(f"{where}: participant {pid!r} is listed twice")
            continue
        seen.add(pid)
        raw = str(record[label_column]).strip()
        if raw.lower() in MISSING_VALUES:
            if skip_unlabelled:
                skipped[pid] = f"no {label_column!r} value"
            else:
                problems.append(f"{where}: {label_column!r} is missing ({raw!r}); expected one of {accepted} "
                                "(or leave unlabelled participants out: --skip-unlabelled)")
            continue
        label = mapping.get(raw.lower())
        if label is None:
            problems.append(f"{where}: {label_column!r} = {raw!r} is not a known group; expected one of {accepted} "
                            "(map your values with --control / --patient)")
            continue
        files: dict[str, Path] = {}
        why: list[str] = []
        for column, pattern in (("icn_path", icn_pattern), ("smri_path", smri_pattern)):
            found = _match(derivatives, pattern, label_text)
            if len(found) == 1:
                files[column] = found[0].resolve()
                continue
            shown = ", ".join(str(p.relative_to(derivatives)) for p in found[:4]) + (" ..." if len(found) > 4 else "")
            why.append(f"{column}: no file matches {pattern.format(subject=label_text)!r}" if not found else
                       f"{column}: {len(found)} files match {pattern.format(subject=label_text)!r} ({shown}); "
                       "expected one: narrow the pattern (a session, a space- entity)")
        if why:
            if skip_incomplete:
                skipped[pid] = "; ".join(why)
            else:
                problems.append(f"participant {pid!r} in {derivatives}: " + "; ".join(why))
            continue
        rows.append({"subject_id": pid, "label": label, **files, **{c: record[c] for c in covariates}})
    if not rows and problems and all("no file matches" in p for p in problems):
        problems.insert(0, "no participant has its files where the patterns look: check --icn-pattern/--smri-pattern")
    raise_collected(problems, f"BIDS derivatives {derivatives}")
    if not rows:
        raise InputError(f"BIDS derivatives {derivatives}: no participant of {path} has both files and a label "
                         f"({len(skipped)} skipped)")
    for pid, reason in skipped.items():
        log.warning("left out %s: %s", pid, reason)
    unlisted = sorted(p.name for p in derivatives.glob("sub-*") if p.is_dir() and p.name not in seen)
    if unlisted:
        log.warning("%d subject folder(s) of %s are not in %s and are left out: %s", len(unlisted), derivatives,
                    path, ", ".join(unlisted[:5]) + (" ..." if len(unlisted) > 5 else ""))
    table = pd.DataFrame(rows, columns=[*REQUIRED_COLUMNS, *covariates])
    return BIDSManifest(table=table, participants=path, skipped=skipped, unlisted=unlisted)


def write_manifest(found: BIDSManifest, out: str | os.PathLike) -> Path:
    """Write the manifest: tab-separated for ``.tsv``, else comma-separated; a path under the
    manifest's folder is written relative to it (the folder can move), any other absolute."""
    from fusion import io

    out = Path(out)
    base = out.parent.resolve()
    table = found.table.copy()
    for column in ("icn_path", "smri_path"):
        table[column] = [os.path.relpath(p, base) if base in Path(p).parents else str(p) for p in table[column]]
    io.write_csv(out, table, sep="\t" if out.suffix.lower() == ".tsv" else ",")
    return out
