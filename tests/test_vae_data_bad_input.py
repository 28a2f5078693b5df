"""Manifest validation details: problems collected and capped, structural errors.

The one-case-per-bad-input matrix of ``fusion prepare`` (message, exit code 2, earlier prepared
folder left byte-for-byte intact) lives in ``tests/test_reliability_bad_inputs.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from fusion.data.manifest import read_manifest
from fusion.data.prepare import prepare_cohort
from fusion.data.testing import cached_vae_cohort, copy_cohort
from fusion.errors import InputError


def _edit_manifest(root: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    table = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    edit(table).to_csv(root / "manifest.csv", index=False)


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
    with pytest.raises(InputError,
                       match=r"line 21 \(subject 'sub-0020'\): icn_path file .*sub-0020/icn.nii.gz does not exist"):
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
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(InputError, match=r"folder.csv is a directory; expected a file"):
        read_manifest(tmp_path / "folder.csv")


def test_tsv_manifest_reads_like_the_csv(tmp_path: Path) -> None:
    manifest = copy_cohort(cached_vae_cohort(24, True), tmp_path / "cohort")
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    frame.to_csv(manifest.with_suffix(".tsv"), sep="\t", index=False)
    frame.to_csv(manifest.with_suffix(".txt"), sep="\t", index=False)  # no telling suffix: sniffed from the header
    reference = read_manifest(manifest)
    for path in (manifest.with_suffix(".tsv"), manifest.with_suffix(".txt")):
        table = read_manifest(path)
        assert table.entries == reference.entries and table.covariate_columns == ("age", "sex")
