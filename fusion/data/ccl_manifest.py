"""The gCAM-CCL manifest: subjects, their score or label, FC files and genotypes, validated.

Manifest columns (``.csv`` comma- or ``.tsv`` tab-separated): ``subject_id``, ``score``
(continuous; labels from its quantiles) or ``label`` (given labels), ``fc_path`` (``.npy``,
``.csv`` or ``.mat``, a square ``(264, 264)`` matrix; any atlas size with ``n_rois=None``) and
optionally ``snp_path`` (one subject's genotype vector, ``.npy`` or ``.csv``). Paths are
relative to the manifest's folder or absolute. Without ``snp_path`` the genotypes come from one
genotype set: PLINK ``.bed/.bim/.fam`` or a CSV of 0/1/2 with a ``subject_id`` column, given
explicitly or found beside the manifest (``genotypes.bed`` / ``genotypes.csv``; when both are
there, the ``genotypes`` setting must choose one: an error names both).

Labels by score: the bottom ``quantiles[0]`` of the score is class 0 (``low``), the top
``quantiles[1]`` class 1 (``high``, the positive class of the metrics); the middle is left out,
as in Hu et al. 2021 (bottom 20% vs top 20% of WRAT).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fusion.data.integrity import path_problem
from fusion.errors import ConfigError, InputError

PathLike = str | os.PathLike

log = logging.getLogger(__name__)

CLASS_NAMES = ("low", "high")
_LABEL_WORDS = {"0": 0, "1": 1, "low": 0, "high": 1, "control": 0, "patient": 1}


def read_fc(path: PathLike, subject: str = "?", n_rois: int | None = 264, symmetry_tol: float = 1e-4,
            mat_key: str | None = None, size_from: str = "n_rois") -> np.ndarray:
    """Read and validate one FC matrix.

    Args:
        path: ``.npy`` (read with ``allow_pickle=False``), ``.csv`` (comma-separated numbers, no
            header) or ``.mat`` (``scipy.io.loadmat``; the variable ``mat_key``, or the only 2D
            numeric variable).
        subject: subject id, for error messages.
        n_rois: expected side of the matrix; None accepts any square matrix.
        symmetry_tol: largest allowed ``|A - A.T|``.
        size_from: where ``n_rois`` came from, for the message of a wrong size (e.g. "inferred
            from subject 's01'").

    Returns:
        ``(n_rois, n_rois)`` float32.
    """
    path = Path(path)
    where = f"subject {subject!r}, FC file {path}"
    problem = path_problem(path)
    if problem == "does not exist":
        raise InputError(f"{where}: file not found")
    if problem is not None:
        raise InputError(f"{where}: {problem}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            arr = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        elif suffix == ".mat":
            from scipy.io import loadmat

            try:  # MATLAB formats only: loadmat never unpickles
                loaded = loadmat(path)
            except Exception as err:  # scipy raises MatReadError, IndexError, ... on a bad file
                raise InputError(f"{where}: cannot read ({type(err).__name__}: {err or 'bad header'}); "
                                 "expected a MATLAB .mat file (truncated or not a .mat?)") from err
            content = {k: v for k, v in loaded.items() if not k.startswith("__")}
            if mat_key is not None:
                if mat_key not in content:
                    raise InputError(f"{where}: no variable {mat_key!r} (variables: {sorted(content)})")
                arr = content[mat_key]
            else:
                cands = [k for k, v in content.items() if isinstance(v, np.ndarray) and v.ndim == 2
                         and np.issubdtype(v.dtype, np.number)]
                if len(cands) != 1:
                    raise InputError(f"{where}: expected exactly one 2D numeric variable, found {cands}; "
                                     f"set the variable name (fc_mat_key)")
                arr = content[cands[0]]
        else:
            raise InputError(f"{where}: unknown format {suffix!r} (expected .npy, .csv or .mat)")
    except InputError:
        raise
    except (ValueError, OSError) as err:
        raise InputError(f"{where}: cannot read ({err})") from err
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"{where}: expected real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InputError(f"{where}: FC matrix must be square (n_rois x n_rois), got shape {arr.shape}")
    if n_rois is not None and arr.shape[0] != n_rois:
        raise InputError(f"{where}: expected {n_rois} x {n_rois} ROIs ({size_from}), "
                         f"got {arr.shape[0]} x {arr.shape[1]}; every subject needs the same atlas")
    arr = arr.astype(np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        raise InputError(f"{where}: {int((~finite).sum())} non-finite value(s) (NaN/inf), first at [{i}, {j}]")
    asym = float(np.abs(arr - arr.T).max())
    if asym > symmetry_tol:
        i, j = np.unravel_index(int(np.argmax(np.abs(arr - arr.T))), arr.shape)
        raise InputError(f"{where}: FC matrix is not symmetric (|A - A.T| = {asym:.3g} at [{i}, {j}], "
                         f"tolerance {symmetry_tol})")
    return arr


def quantile_labels(score: np.ndarray, quantiles: Sequence[float] = (0.2, 0.2),
                    subject_ids: list[str] | None = None, field_name: str = "score") -> np.ndarray:
    """Labels from a continuous score: 0 = bottom ``quantiles[0]``, 1 = top ``quantiles[1]``, -1 = middle.

    Raises:
        InputError: a NaN score, or too few distinct values for the two groups to be disjoint and
            non-empty (e.g. a constant score).
    """
    lo_q, hi_q = (float(q) for q in quantiles)
    if not (0 < lo_q < 1 and 0 < hi_q < 1 and lo_q + hi_q <= 1):
        raise ConfigError(f"quantiles must be two fractions in (0, 1) summing to <= 1, got {quantiles}")
    score = np.asarray(score, dtype=float)
    bad = ~np.isfinite(score)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        who = subject_ids[k] if subject_ids else f"row {k}"
        raise InputError(f"manifest field {field_name!r}: subject {who!r} has no valid score ({score[k]!r})")
    low_thr = np.quantile(score, lo_q)
    high_thr = np.quantile(score, 1 - hi_q)
    labels = np.full(score.shape, -1, dtype=np.int64)
    labels[score <= low_thr] = 0
    labels[score >= high_thr] = 1
    n_distinct = len(np.unique(score))
    if low_thr >= high_thr or not (labels == 0).any() or not (labels == 1).any():
        raise InputError(
            f"manifest field {field_name!r} has {n_distinct} distinct value(s): too few to split the bottom "
            f"{lo_q:.0%} from the top {hi_q:.0%} (thresholds {low_thr:g} and {high_thr:g} overlap); "
            f"give a continuous score or a 'label' column"
        )
    return labels


@dataclass
class CCLManifest:
    """The labelled subjects of a CCL manifest (middle-score subjects dropped), validated.

    Attributes:
        subject_ids: ``(n,)`` labelled subjects, manifest order.
        labels: ``(n,)`` int64, 0 = low, 1 = high.
        scores: ``(n,)`` float or None when labels were given.
        fc_paths: ``(n,)`` absolute paths.
        genotypes: ``(n, n_snps)`` float32, NaN = missing call.
        snp_ids: SNP identifiers.
        manifest: path of the manifest.
        ground_truth: content of ``ground_truth.json`` beside the manifest, or None.
        n_total: number of subjects in the manifest (before dropping the middle group).
        n_rois: side of every FC matrix (given, or inferred from the first labelled subject).
        n_snps: SNPs per subject (given, or inferred from the genotypes).
    """

    subject_ids: list[str]
    labels: np.ndarray
    scores: np.ndarray | None
    fc_paths: list[Path]
    genotypes: np.ndarray
    snp_ids: list[str]
    manifest: Path
    ground_truth: dict | None = None
    n_total: int = 0
    class_names: tuple[str, str] = CLASS_NAMES
    genotype_source: str = ""
    extra: dict = field(default_factory=dict)
    n_rois: int = 0
    n_snps: int = 0


GENOTYPE_NAMES = ("genotypes.bed", "genotypes.csv")


def genotype_files_beside(folder: Path) -> list[Path]:
    """The genotype sets found in ``folder``: ``genotypes.bed`` (else the only ``*.bed``) and ``genotypes.csv``."""
    found = []
    plink = folder / "genotypes.bed"
    if plink.exists():
        found.append(plink)
    else:
        beds = sorted(folder.glob("*.bed"))
        if len(beds) == 1:
            found.append(beds[0])
    if (folder / "genotypes.csv").exists():
        found.append(folder / "genotypes.csv")
    return found


def _find_genotypes(folder: Path, where: str) -> Path:
    """The one genotype set beside the manifest; two sets (PLINK and CSV) are an error naming both."""
    found = genotype_files_beside(folder)
    if len(found) > 1:
        names = " and ".join(str(p) for p in found)
        raise InputError(
            f"{where}: two genotype sets beside the manifest, {names}; which one holds the genotypes is not "
            f"guessed: choose one with the genotypes setting (config key data.genotypes={found[0].name} or "
            f"data.genotypes={found[1].name}; the genotypes argument in Python), or remove the other")
    if not found:
        beds = sorted(folder.glob("*.bed"))
        several = f" ({len(beds)} .bed sets found: {', '.join(b.name for b in beds[:5])}; name one)" if beds else ""
        raise InputError(f"{where}: no genotypes: give a .bed/.csv genotype set (data.genotypes), a 'snp_path' column, "
                         f"or put genotypes.bed / genotypes.csv beside the manifest{several}")
    return found[0]


def _read_snp_vector(path: Path, subject: str, n_snps: int | None, size_from: str = "n_snps") -> np.ndarray:
    where = f"subject {subject!r}, SNP file {path}"
    problem = path_problem(path)
    if problem == "does not exist":
        raise InputError(f"{where}: file not found")
    if problem is not None:
        raise InputError(f"{where}: {problem}")
    try:
        if path.suffix == ".npy":
            vec = np.load(path, allow_pickle=False)
        else:
            vec = np.genfromtxt(path, delimiter=",", dtype=np.float64)
    except (ValueError, OSError) as err:
        raise InputError(f"{where}: cannot read ({err})") from err
    vec = np.asarray(vec, dtype=np.float32).ravel()
    if n_snps is not None and vec.shape != (n_snps,):
        raise InputError(f"{where}: expected {n_snps} SNPs ({size_from}), got {vec.size}")
    return vec


def load_ccl_manifest(
    manifest: PathLike,
    genotypes: PathLike | None = None,
    label_column: str | None = None,
    score_column: str = "score",
    quantiles: Sequence[float] = (0.2, 0.2),
    n_rois: int | None = 264,
    n_snps: int | None = 750,
    symmetry_tol: float = 1e-4,
    validate_fc: bool = True,
    fc_mat_key: str | None = None,
) -> CCLManifest:
    """Read a CCL manifest, derive labels, read and check genotypes (and every FC file).

    Args:
        manifest: the manifest, ``.csv`` (comma) or ``.tsv`` (tab).
        genotypes: a ``.bed`` or ``.csv`` genotype set (relative: to the current folder, else to
            the manifest's); default: ``snp_path`` column, else ``genotypes.bed``/``genotypes.csv``
            (or the only ``.bed``) beside the manifest. When both a PLINK set and
            ``genotypes.csv`` lie there, this argument must choose one (an error names both).
        label_column: use this column's 0/1 (or low/high) labels instead of score quantiles; when
            None, a ``label`` column is used if there is no ``score_column``.
        score_column: continuous score column for quantile labels.
        quantiles: (bottom, top) fractions of the score forming classes 0 and 1.
        n_rois, n_snps: expected sizes; None infers them (FC side from the first labelled
            subject, SNP count from the genotypes) and checks every subject against that.
        symmetry_tol: FC symmetry tolerance.
        validate_fc: read every labelled subject's FC now (errors surface before training).
    """
    import pandas as pd

    from fusion.data.manifest import read_table

    manifest = Path(manifest)
    where = f"manifest {manifest}"
    frame = read_table(manifest, "expected a CSV or TSV with columns subject_id, score|label, fc_path[, snp_path]",
                       dtype={"subject_id": str})
    for col in ("subject_id", "fc_path"):
        if col not in frame.columns:
            raise InputError(f"{where}: missing column {col!r} (columns: {list(frame.columns)})")
    if frame.empty:
        raise InputError(f"{where}: no subjects")
    ids = frame["subject_id"].astype(str).tolist()
    dup = sorted({s for s in ids if ids.count(s) > 1}) if len(set(ids)) != len(ids) else []
    if dup:
        raise InputError(f"{where}: duplicate subject_id(s) {dup[:5]}")

    if label_column is None and score_column not in frame.columns and "label" in frame.columns:
        label_column = "label"
    scores = None
    if label_column is not None:
        if label_column not in frame.columns:
            raise InputError(f"{where}: no label column {label_column!r}")
        labels = np.empty(len(frame), dtype=np.int64)
        for k, value in enumerate(frame[label_column].astype(str).str.strip().str.lower()):
            if value not in _LABEL_WORDS:
                raise InputError(f"{where}: subject {ids[k]!r}, field {label_column!r} = {value!r}; "
                                 f"expected 0/1 or low/high")
            labels[k] = _LABEL_WORDS[value]
    else:
        if score_column not in frame.columns:
            raise InputError(f"{where}: no score column {score_column!r} and no 'label' column")
        raw = pd.to_numeric(frame[score_column], errors="coerce").to_numpy(dtype=float)
        labels = quantile_labels(raw, quantiles, ids, score_column)
        scores = raw
    keep = np.flatnonzero(labels >= 0)
    for cls in (0, 1):
        if not (labels[keep] == cls).any():
            raise InputError(f"{where}: class {cls} ({CLASS_NAMES[cls]}) has no subject")

    base = manifest.parent
    def _abs(p: str) -> Path:
        q = Path(str(p))
        return q if q.is_absolute() else base / q

    sel_ids = [ids[k] for k in keep]
    fc_paths = [_abs(frame["fc_path"].iloc[k]) for k in keep]
    problems = {p: path_problem(p) for p in fc_paths}
    unusable = [(sid, p, problems[p]) for sid, p in zip(sel_ids, fc_paths)
                if problems[p] not in (None, "does not exist")]
    if unusable:
        shown = "; ".join(f"subject {sid!r}: {p} {why}" for sid, p, why in unusable[:5])
        raise InputError(f"{where}: {len(unusable)} FC path(s) are not readable files: {shown}"
                         + (" ..." if len(unusable) > 5 else ""))
    missing = [(sid, p) for sid, p in zip(sel_ids, fc_paths) if problems[p] is not None]
    relative = [(k + 2, str(frame["fc_path"].iloc[k]), fc_paths[i]) for i, k in enumerate(keep)
                if not Path(str(frame["fc_path"].iloc[k])).is_absolute()]
    if missing and relative and len(missing) == len(fc_paths) == len(relative):
        from fusion.data.manifest import relative_paths_message

        raise InputError(relative_paths_message(manifest, relative))
    if missing:
        shown = ", ".join(f"{sid!r} ({p})" for sid, p in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(f"{where}: {len(missing)} FC file(s) not found, for subject(s) {shown}")

    # Genotypes.
    if genotypes is None and "snp_path" in frame.columns:
        ignored = genotype_files_beside(base)
        if ignored:
            log.warning("%s: genotypes read from its snp_path column; %s beside it ignored (set data.genotypes "
                        "to use a genotype set instead)", where, ", ".join(str(p) for p in ignored))
        vectors: list[np.ndarray] = []
        size_from = "n_snps"
        for k in keep:
            vectors.append(_read_snp_vector(_abs(frame["snp_path"].iloc[k]), ids[k], n_snps, size_from))
            if n_snps is None:
                n_snps, size_from = vectors[0].size, f"inferred from subject {ids[k]!r}"
        geno = np.stack(vectors)
        snp_ids = [f"snp{j:04d}" for j in range(geno.shape[1])]
        from fusion.data.genotypes import validate_codes

        validate_codes(geno, sel_ids, snp_ids, "snp_path files")
        source = "snp_path column"
    else:
        from fusion.data.genotypes import read_genotypes

        path = Path(genotypes) if genotypes is not None else _find_genotypes(base, where)
        if not path.is_absolute() and not path.exists():
            path = base / path
        gset = read_genotypes(path)
        geno = gset.select(sel_ids)
        snp_ids = gset.snp_ids
        source = str(path)
    if n_snps is not None and geno.shape[1] != n_snps:
        raise InputError(f"genotypes {source}: expected {n_snps} SNPs (n_snps), got {geno.shape[1]}; set n_snps: null "
                         "to take the count from the genotypes")
    n_snps = int(geno.shape[1])

    size_from = "n_rois"
    if n_rois is None:  # the first labelled subject sets the atlas size; every other must match
        n_rois = int(read_fc(fc_paths[0], sel_ids[0], None, symmetry_tol, fc_mat_key).shape[0])
        size_from = f"inferred from subject {sel_ids[0]!r}"
    if validate_fc:
        for sid, p in zip(sel_ids, fc_paths):
            read_fc(p, sid, n_rois, symmetry_tol, fc_mat_key, size_from)

    truth = None
    gt_path = base / "ground_truth.json"
    if gt_path.is_file():
        from fusion.io import read_json

        truth = read_json(gt_path)
    return CCLManifest(
        subject_ids=sel_ids,
        labels=labels[keep],
        scores=None if scores is None else scores[keep],
        fc_paths=fc_paths,
        genotypes=np.asarray(geno, dtype=np.float32),
        snp_ids=list(snp_ids),
        manifest=manifest,
        ground_truth=truth,
        n_total=len(frame),
        genotype_source=source,
        n_rois=int(n_rois),
        n_snps=n_snps,
    )
