"""``fusion manifest --bids``: a BIDS-derivatives fixture -> manifest.tsv -> ``fusion prepare``.

The fixture holds the files of the cached tiny VAE cohort under BIDS names (sessions for some
subjects, not others), with ``participants.tsv`` in the BIDS root above the derivatives and
groups written as ``HC`` / ``SZ`` in a ``diagnosis`` column. The reference is the same cohort
prepared from its own CSV manifest: the arrays must be byte-identical.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from fusion.cli import main as fusion_main
from fusion.data.bids import bids_manifest
from fusion.data.testing import cached_prepared, cached_vae_cohort, folder_digest
from fusion.errors import ConfigError, InputError

GROUPS = {"control": "HC", "patient": "SZ"}


def _bids_fixture(root: Path) -> tuple[Path, pd.DataFrame]:
    """``root/bids/derivatives/gift`` with every subject of the cached cohort; returns it and the cohort's manifest."""
    manifest = cached_vae_cohort(24, True)
    cohort = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    derivatives = root / "bids" / "derivatives" / "gift"
    for k, row in enumerate(cohort.to_dict("records")):
        sub = row["subject_id"]
        session = f"ses-{1 + k % 2}/" if k % 3 else ""  # sessions for two subjects in three
        ses = f"_{session[:-1]}" if session else ""
        func = derivatives / f"{sub}/{session}func"
        anat = derivatives / f"{sub}/{session}anat"
        func.mkdir(parents=True)
        anat.mkdir(parents=True)
        shutil.copyfile(manifest.parent / row["icn_path"],
                        func / f"{sub}{ses}_task-rest_desc-neuromark_components.nii.gz")
        shutil.copyfile(manifest.parent / row["smri_path"],
                        anat / f"{sub}{ses}_space-MNI152NLin6Asym_label-GM_probseg.nii.gz")
    participants = pd.DataFrame({
        "participant_id": cohort["subject_id"],
        "age": cohort["age"],
        "sex": cohort["sex"],
        "diagnosis": [GROUPS[v] for v in cohort["label"]],
    })
    participants.to_csv(root / "bids" / "participants.tsv", sep="\t", index=False)
    return derivatives, cohort


def test_bids_derivatives_to_prepared_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    derivatives, cohort = _bids_fixture(tmp_path)
    out = tmp_path / "study" / "manifest.tsv"
    code = fusion_main(["manifest", "--bids", str(derivatives), "--out", str(out), "--label-column", "diagnosis",
                        "--control", "HC", "--patient", "SZ"])
    assert code == 0
    assert "24 subjects (12 patients, 12 controls)" in capsys.readouterr().out
    table = pd.read_csv(out, sep="\t", dtype=str)
    assert list(table.columns) == ["subject_id", "label", "icn_path", "smri_path", "age", "sex"]
    assert table["subject_id"].tolist() == cohort["subject_id"].tolist()
    assert table["label"].tolist() == ["1" if v == "patient" else "0" for v in cohort["label"]]
    assert table["age"].tolist() == cohort["age"].tolist()
    assert table.loc[1, "icn_path"].endswith(
        "sub-0002/ses-2/func/sub-0002_ses-2_task-rest_desc-neuromark_components.nii.gz"
    )

    prepared = tmp_path / "study" / "prepared"
    assert fusion_main(["prepare", "--manifest", str(out), "--out", str(prepared), "--no-progress"]) == 0
    reference, digest = folder_digest(cached_prepared(24, True)), folder_digest(prepared)
    arrays = sorted(k for k in reference if k.endswith(".npy"))
    assert len(arrays) == 25 and {k: digest[k] for k in arrays} == {k: reference[k] for k in arrays}
    index = pd.read_csv(prepared / "index.csv", dtype=str)
    assert index["sex"].tolist() == cohort["sex"].tolist()


def test_bids_problems_are_named(tmp_path: Path) -> None:
    derivatives, _ = _bids_fixture(tmp_path)
    kwargs = dict(label_column="diagnosis", control_values=["HC"], patient_values=["SZ"])
    # a second gray-matter map (native space) for one subject: two matches, both listed
    anat = derivatives / "sub-0001" / "anat"
    shutil.copyfile(next(anat.iterdir()), anat / "sub-0001_label-GM_probseg.nii.gz")
    with pytest.raises(InputError) as info:
        bids_manifest(derivatives, **kwargs)
    text = str(info.value)
    assert "participant 'sub-0001'" in text and "smri_path: 2 files match" in text
    assert "sub-0001_label-GM_probseg.nii.gz" in text and "narrow the pattern" in text
    narrow = "sub-{subject}/**/anat/sub-{subject}_*space-MNI152NLin6Asym_label-GM_probseg.nii*"
    assert len(bids_manifest(derivatives, smri_pattern=narrow, **kwargs).table) == 24
    # a subject without its ICN file: an error, or left out with --skip-incomplete
    next((derivatives / "sub-0003").rglob("*_components.nii.gz")).unlink()
    with pytest.raises(InputError, match=r"participant 'sub-0003'.*icn_path: no file matches 'sub-0003/\*\*/func/"):
        bids_manifest(derivatives, smri_pattern=narrow, **kwargs)
    found = bids_manifest(derivatives, smri_pattern=narrow, skip_incomplete=True, **kwargs)
    assert len(found.table) == 23 and list(found.skipped) == ["sub-0003"]
    # group values that are not mapped, a missing label column, a half-given mapping
    with pytest.raises(InputError, match=r"'diagnosis' = 'HC' is not a known group"):
        bids_manifest(derivatives, label_column="diagnosis")
    with pytest.raises(InputError, match=r"no column 'group'.*--label-column"):
        bids_manifest(derivatives)
    with pytest.raises(ConfigError, match="both the control values and the patient values"):
        bids_manifest(derivatives, label_column="diagnosis", control_values=["HC"])
    participants = tmp_path / "bids" / "participants.tsv"
    frame = pd.read_csv(participants, sep="\t", dtype=str)
    frame.loc[4, "diagnosis"] = "n/a"
    frame.to_csv(participants, sep="\t", index=False)
    with pytest.raises(InputError, match=r"line 6 \('sub-0005'\): 'diagnosis' is missing"):
        bids_manifest(derivatives, smri_pattern=narrow, skip_incomplete=True, **kwargs)
    found = bids_manifest(derivatives, smri_pattern=narrow, skip_incomplete=True, skip_unlabelled=True, **kwargs)
    assert sorted(found.skipped) == ["sub-0003", "sub-0005"] and len(found.table) == 22
