"""Bad input to ``fusion prepare``: a clear error naming subject and file/field, exit code 2, and an
earlier prepared folder left byte-for-byte intact."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from fusion.cli import main
from fusion.data.manifest import read_manifest
from fusion.data.prepare import prepare_cohort
from fusion.data.testing import cached_prepared, cached_vae_cohort, copy_cohort, folder_digest, write_nifti
from fusion.errors import InputError


def _rewrite(path: Path, edit: Callable[[np.ndarray], np.ndarray], affine_shift: float = 0.0) -> None:
    image = nib.load(path)
    data = edit(image.get_fdata().astype(np.float32))
    affine = image.affine.copy()
    affine[:3, 3] += affine_shift
    path.unlink()
    write_nifti(path, data, affine)


def _edit_manifest(root: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    table = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    edit(table).to_csv(root / "manifest.csv", index=False)


def _set(frame: pd.DataFrame, subject: str, column: str, value: str) -> pd.DataFrame:
    frame.loc[frame["subject_id"] == subject, column] = value
    return frame


def _with_component(k: int, value: float) -> Callable[[np.ndarray], np.ndarray]:
    def edit(data: np.ndarray) -> np.ndarray:
        if value == 0:
            data[..., k - 1] = 0
        else:
            data[7, 8, 6, k - 1] = value
        return data
    return edit


def _truncate(path: Path, n_bytes: int | None = None) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: n_bytes if n_bytes is not None else int(len(raw) * 0.6)])


# id -> (corrupt the cohort folder, extra CLI args, substrings the message must contain)
CASES: dict[str, tuple[Callable[[Path], None], list[str], list[str]]] = {
    "missing_file": (lambda r: (r / "sub-0002/smri_gm.nii.gz").unlink(), [],
                     ["sub-0002", "smri_path", "sub-0002/smri_gm.nii.gz", "does not exist"]),
    "wrong_n_components": (lambda r: _rewrite(r / "sub-0003/icn.nii.gz", lambda d: d[..., :52]), [],
                           ["sub-0003", "sub-0003/icn.nii.gz", "52 components", "expected 53"]),
    "grid_mismatch": (lambda r: _rewrite(r / "sub-0004/icn.nii.gz", lambda d: d, affine_shift=12.0), [],
                      ["sub-0004", "sub-0004/icn.nii.gz", "different grid", "grid of subject 'sub-0001'"]),
    "nan": (lambda r: _rewrite(r / "sub-0005/icn.nii.gz", _with_component(10, np.nan)), [],
            ["sub-0005", "sub-0005/icn.nii.gz", "component 10 (ICN10 (SM))", "NaN/Inf"]),
    "inf": (lambda r: _rewrite(r / "sub-0006/smri_gm.nii.gz", lambda d: np.where(d > 0.5, np.inf, d)), [],
            ["sub-0006", "sub-0006/smri_gm.nii.gz", "non-finite"]),
    "all_zero_volume": (lambda r: _rewrite(r / "sub-0007/icn.nii.gz", _with_component(7, 0.0)), [],
                        ["sub-0007", "sub-0007/icn.nii.gz", "component 7", "all zeros"]),
    "unknown_label": (lambda r: _edit_manifest(r, lambda f: _set(f, "sub-0003", "label", "schizophrenia")), [],
                      ["sub-0003", "label", "'schizophrenia'", "0/1 or control/patient"]),
    "missing_label": (lambda r: _edit_manifest(r, lambda f: _set(f, "sub-0004", "label", "")), [],
                      ["sub-0004", "label is missing"]),
    "duplicate_subject_id": (lambda r: _edit_manifest(r, lambda f: _set(f, "sub-0005", "subject_id", "sub-0001")), [],
                             ["'sub-0001'", "duplicate subject_id", "line 6", "first on line 2"]),
    "fewer_subjects_per_class_than_folds": (lambda r: _edit_manifest(r, lambda f: f.iloc[:8]), ["--n-splits", "10"],
                                            ["manifest.csv", "class 0 (control)", "fewer than n_splits=10"]),
    "truncated_nifti": (lambda r: _truncate(r / "sub-0006/icn.nii.gz"), [],
                        ["sub-0006", "sub-0006/icn.nii.gz", "cannot be read", "truncated"]),
    "truncated_header": (lambda r: _truncate(r / "sub-0002/smri_gm.nii.gz", 60), [],
                         ["sub-0002", "sub-0002/smri_gm.nii.gz", "not a readable NIfTI"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_named_and_nothing_is_destroyed(case: str, tmp_path: Path, capsys) -> None:
    corrupt, extra, expected = CASES[case]
    manifest = copy_cohort(cached_vae_cohort(24, True), tmp_path / "cohort")
    out = tmp_path / "prepared"
    shutil.copytree(cached_prepared(24, True), out)  # an earlier, good preparation
    before = folder_digest(out)
    corrupt(manifest.parent)
    capsys.readouterr()

    rc = main(["prepare", "--manifest", str(manifest), "--out", str(out), "--no-progress", *extra])

    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("fusion prepare: error:")
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert folder_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort", "prepared"]  # no staging left behind


def test_problems_are_collected_and_capped(tmp_path: Path) -> None:
    manifest = copy_cohort(cached_vae_cohort(24, True), tmp_path / "cohort")
    _edit_manifest(manifest.parent, lambda f: f.assign(label=["maybe"] * 12 + ["1"] * 12))
    (manifest.parent / "sub-0020/icn.nii.gz").unlink()
    with pytest.raises(InputError) as info:
        read_manifest(manifest)
    text = str(info.value)
    assert "13 problem(s)" in text and "... and 3 more" in text
    assert "line 2 (subject 'sub-0001'): unknown label 'maybe'" in text
    _edit_manifest(manifest.parent, lambda f: f.assign(label=["0"] * 12 + ["patient"] * 12))
    with pytest.raises(InputError, match=r"line 21 \(subject 'sub-0020'\): icn_path file .*sub-0020/icn.nii.gz does not exist"):
        prepare_cohort(manifest, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_manifest_structure_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("subject_id,diagnosis,icn_path,smri_path\ns1,1,a.nii,b.nii\n")
    with pytest.raises(InputError, match=r"lacks column\(s\) \['label'\]"):
        read_manifest(path)
    path.write_text("subject_id,label,icn_path,smri_path\n")
    with pytest.raises(InputError, match="no subjects"):
        read_manifest(path)
    path.write_text("subject_id,label,icn_path,smri_path\n../evil,1,a.nii,b.nii\n")
    with pytest.raises(InputError, match="not usable as a file name"):
        read_manifest(path, check_files=False)
    with pytest.raises(InputError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")
