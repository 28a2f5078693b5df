"""The input-validation matrix of both pipelines: one parametrised case per bad input.

Every case goes through what a user runs: ``fusion prepare`` (the CLI's ``main``: exit code 2 and
``fusion prepare: error: ...``) or a training run composed from ``conf/`` exactly as
``catalyst-dl run --hydra`` composes it (the error that reaches Hydra, which prints it and exits
with 1; ``test_catalyst_dl_entry_point_exits_non_zero`` checks that last step through the real
entry point, which also copies Catalyst's code into the logdir on each launch and is therefore kept
to a few cases). Each asserts the message names the culprit (subject, file, field or key) and what
was expected, and that results already on disk (an earlier prepared folder, an earlier run's
files) are byte-for-byte unchanged.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from reliability_helpers import CONF, TINY_VAE, run_config

from fusion.cli import main as fusion_main
from fusion.data.folds import save_folds, stratified_folds
from fusion.data.testing import (
    cached_prepared,
    cached_vae_cohort,
    copy_cohort,
    folder_digest,
    write_nifti,
)
from fusion.errors import ConfigError

R, P, N_CCL = 12, 20, 40  # CCL test cohort: 12 ROIs, 20 SNPs, 40 subjects (16 labelled)


# ----------------------------------------------------------------------------- helpers
def catalyst_dl(config: str, overrides: list[str]) -> tuple[int, str]:
    """``catalyst-dl run --hydra --config-dir conf --config-name <config> <overrides>`` in this
    process; returns its exit code and what it printed on stderr."""
    from catalyst.dl.__main__ import main

    argv = sys.argv
    sys.argv = ["catalyst-dl", "run", "--hydra", "--config-dir", str(CONF), "--config-name", config, *overrides]
    err = io.StringIO()
    code: int | str | None = 0
    try:
        with contextlib.redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = exit_.code
    finally:
        sys.argv = argv
    return int(code or 0), err.getvalue()


def train(config: str, overrides: list[str]) -> tuple[int, str]:
    """Compose and run a training config as ``catalyst-dl`` does; return 1 and the error chain as
    Hydra prints it when the run fails (the error must be a FusionError or caused by one), else 0."""
    from fusion.errors import FusionError

    try:
        run_config(config, overrides)
    except Exception as err:  # what Hydra catches and reports
        chain, cause = [], err
        while cause is not None:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        assert any(isinstance(e, FusionError) for e in chain), repr(err)
        return 1, "\n".join(f"{type(e).__name__}: {e}" for e in chain)
    return 0, ""


def _rewrite(path: Path, edit: Callable[[np.ndarray], np.ndarray] = lambda d: d,
             affine: Callable[[np.ndarray], np.ndarray] = lambda a: a, dtype=np.float32) -> None:
    image = nib.load(path)
    data = edit(image.get_fdata().astype(np.float32))
    new_affine = affine(image.affine.copy())
    path.unlink()
    if dtype is np.float32:
        write_nifti(path, data, new_affine)
    else:
        nib.save(nib.Nifti1Image(data.astype(dtype), new_affine), str(path))


def _singular_sform(path: Path) -> None:
    image = nib.load(path)
    affine = image.affine.copy()
    affine[0, :3] = 0.0  # a converter that lost the x axis: no voxel-to-world inverse
    out = nib.Nifti1Image(image.get_fdata().astype(np.float32), None)
    out.header.set_sform(affine, code=1)
    out.header.set_qform(None, code=0)
    path.unlink()
    nib.save(out, str(path))


def _rotate(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(0.3), np.sin(0.3)
    a[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ a[:3, :3]  # non-diagonal (oblique)
    return a


def _edit_manifest(root: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    table = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    edit(table).to_csv(root / "manifest.csv", index=False)


def _set(frame: pd.DataFrame, subject: str, column: str, value: str) -> pd.DataFrame:
    frame.loc[frame["subject_id"] == subject, column] = value
    return frame


def _component(k: int, value: float) -> Callable[[np.ndarray], np.ndarray]:
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


def _header_only(path: Path, n_bytes: int) -> None:
    """A complete gzip file holding only the first ``n_bytes`` of the NIfTI (its header cut short)."""
    import gzip

    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:n_bytes]))


def _move_manifest(root: Path) -> None:
    (root / "elsewhere").mkdir()
    shutil.move(root / "manifest.csv", root / "elsewhere" / "manifest.csv")


# ----------------------------------------------------------------------------- fusion prepare
# id -> (corrupt the cohort folder, manifest path inside it, extra CLI args, substrings of the message)
PREPARE_CASES: dict[str, tuple[Callable[[Path], None], str, list[str], list[str]]] = {
    "missing_file": (lambda r: (r / "sub-0002/smri_gm.nii.gz").unlink(), "manifest.csv", [],
                     ["sub-0002", "smri_path", "sub-0002/smri_gm.nii.gz", "does not exist"]),
    "wrong_n_components": (lambda r: _rewrite(r / "sub-0003/icn.nii.gz", lambda d: d[..., :52]), "manifest.csv", [],
                           ["sub-0003", "sub-0003/icn.nii.gz", "52 components", "expected 53"]),
    "grid_mismatch_shape": (lambda r: _rewrite(r / "sub-0004/icn.nii.gz", lambda d: d[:-1]), "manifest.csv", [],
                            ["sub-0004", "sub-0004/icn.nii.gz", "different grid", "grid of subject 'sub-0001'"]),
    "affine_mismatch_voxel_size": (
        lambda r: _rewrite(r / "sub-0005/icn.nii.gz", affine=lambda a: np.diag([3.0, 3.0, 3.0, 1.0])),
        "manifest.csv", [], ["sub-0005", "sub-0005/icn.nii.gz", "different grid", "affine"]),
    "affine_non_diagonal": (lambda r: _rewrite(r / "sub-0006/icn.nii.gz", affine=_rotate), "manifest.csv", [],
                            ["sub-0006", "sub-0006/icn.nii.gz", "different grid", "grid of subject 'sub-0001'"]),
    "affine_singular": (lambda r: _singular_sform(r / "sub-0004/smri_gm.nii.gz"), "manifest.csv", [],
                        ["sub-0004", "sub-0004/smri_gm.nii.gz", "singular or non-finite affine", "invertible"]),
    "nan": (lambda r: _rewrite(r / "sub-0005/icn.nii.gz", _component(10, np.nan)), "manifest.csv", [],
            ["sub-0005", "sub-0005/icn.nii.gz", "component 10 (ICN10 (SM))", "NaN/Inf"]),
    "inf": (lambda r: _rewrite(r / "sub-0006/smri_gm.nii.gz", lambda d: np.where(d > 0.5, np.inf, d)),
            "manifest.csv", [], ["sub-0006", "sub-0006/smri_gm.nii.gz", "non-finite"]),
    "all_zero_volume": (lambda r: _rewrite(r / "sub-0007/icn.nii.gz", _component(7, 0.0)), "manifest.csv", [],
                        ["sub-0007", "sub-0007/icn.nii.gz", "component 7", "all zeros"]),
    "wrong_dtype_complex": (lambda r: _rewrite(r / "sub-0003/icn.nii.gz", dtype=np.complex64), "manifest.csv", [],
                            ["sub-0003", "sub-0003/icn.nii.gz", "complex64", "expected real numbers"]),
    "unknown_label": (lambda r: _edit_manifest(r, lambda f: _set(f, "sub-0003", "label", "schizophrenia")),
                      "manifest.csv", [], ["sub-0003", "label", "'schizophrenia'", "0/1 or control/patient"]),
    "missing_label": (lambda r: _edit_manifest(r, lambda f: _set(f, "sub-0004", "label", "")), "manifest.csv", [],
                      ["sub-0004", "label is missing"]),
    "duplicate_subject_id": (lambda r: _edit_manifest(r, lambda f: _set(f, "sub-0005", "subject_id", "sub-0001")),
                             "manifest.csv", [], ["'sub-0001'", "duplicate subject_id", "line 6", "first on line 2"]),
    "fewer_subjects_per_class_than_folds": (lambda r: _edit_manifest(r, lambda f: f.iloc[:8]), "manifest.csv",
                                            ["--n-splits", "10"],
                                            ["manifest.csv", "class 0 (control)", "fewer than n_splits=10"]),
    "truncated_nifti": (lambda r: _truncate(r / "sub-0006/icn.nii.gz"), "manifest.csv", [],
                        ["sub-0006", "sub-0006/icn.nii.gz", "cannot be read", "truncated"]),
    "unreadable_nifti_header": (lambda r: _header_only(r / "sub-0002/smri_gm.nii.gz", 60), "manifest.csv", [],
                                ["sub-0002", "sub-0002/smri_gm.nii.gz", "not a readable NIfTI"]),
    "empty_manifest_0_bytes": (lambda r: (r / "manifest.csv").write_text(""), "manifest.csv", [],
                               ["manifest.csv", "is empty (0 bytes)", "subject_id, label, icn_path, smri_path"]),
    "empty_manifest_header_only": (lambda r: (r / "manifest.csv").write_text("subject_id,label,icn_path,smri_path\n"),
                                   "manifest.csv", [], ["manifest.csv", "has no subjects"]),
    "manifest_paths_relative_to_another_folder": (_move_manifest, "elsewhere/manifest.csv", [],
                                                  ["elsewhere/manifest.csv", "none of its 48 relative file path(s)",
                                                   "'sub-0001/icn.nii.gz'", "resolved against the manifest's folder"]),
    "output_folder_not_writable": (lambda r: (r / "blocker").write_text("a file, not a folder"), "manifest.csv",
                                   ["--out", "{root}/blocker/prepared"],
                                   ["blocker/prepared", "cannot be created", "blocker is a file"]),
}


@pytest.mark.parametrize("case", list(PREPARE_CASES))
def test_prepare_refuses_bad_input(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corrupt, manifest_name, extra, expected = PREPARE_CASES[case]
    manifest = copy_cohort(cached_vae_cohort(24, True), tmp_path / "cohort")
    out = tmp_path / "prepared"
    shutil.copytree(cached_prepared(24, True), out)  # an earlier, good preparation
    before = folder_digest(out)
    corrupt(manifest.parent)
    extra = [arg.format(root=manifest.parent) for arg in extra]
    args = ["prepare", "--manifest", str(manifest.parent / manifest_name), "--no-progress"]
    if "--out" not in extra:
        args += ["--out", str(out)]
    capsys.readouterr()

    code = fusion_main([*args, *extra])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("fusion prepare: error:")
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert folder_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort", "prepared"]  # no staging left behind


# ----------------------------------------------------------------------------- VAE training run
#: What ``catalyst-dl`` itself writes into a logdir on every launch, before the run starts: Hydra's
#: output folder (new per launch) and Catalyst's dumps of the config and code.
LAUNCH_DUMPS = ("hydra/", "configs/", "code/")


def _unchanged(logdir: Path, before: dict[str, str]) -> None:
    """Every earlier file is byte-identical; new files are only catalyst-dl's per-launch dumps."""
    after = folder_digest(logdir)
    assert {k: after.get(k) for k in before} == before
    assert all(k in before or k.startswith(LAUNCH_DUMPS) for k in after), sorted(set(after) - set(before))[:5]


def _earlier_results(logdir: Path) -> dict[str, str]:
    """Files of an earlier run in ``logdir`` that a failed run must leave as they are."""
    (logdir / "fold_00").mkdir(parents=True)
    (logdir / "results.json").write_text('{"auc_mean": 0.91}\n')
    (logdir / "fold_00" / "result.json").write_text('{"auc": 0.91}\n')
    (logdir / "report.md").write_text("# an earlier report\n")
    return folder_digest(logdir)


def _other_subjects_splits(logdir: Path, prepared: Path) -> list[str]:
    ids = [f"other-{k:02d}" for k in range(24)]
    labels = np.arange(24) % 2
    save_folds(logdir / "splits.json", stratified_folds(labels, 2, 0.1, 42), ids, seed=42)
    return []


def _drop_array(logdir: Path, prepared: Path) -> list[str]:
    (prepared / "sub-0003.npy").unlink()
    return []


def _pickled_array(logdir: Path, prepared: Path) -> list[str]:
    np.save(prepared / "sub-0004.npy", np.array([{"payload": 1}], dtype=object), allow_pickle=True)
    return []


# id -> (set up logdir / prepared copy and return extra overrides, overrides, substrings of stderr)
VAE_RUN_CASES: dict[str, tuple[Callable[[Path, Path], list[str]], list[str], list[str]]] = {
    "config_key_typo_top_level": (lambda l, p: [], ["+latnt_dim=32"],
                                  ["unknown top-level config key(s) ['latnt_dim']", "expected some of"]),
    "config_key_typo_nested": (lambda l, p: [], ["+stage.num_epoch=3"],
                               ["unknown config key(s) ['stage.num_epoch']", "num_epochs"]),
    "fewer_subjects_per_class_than_folds": (lambda l, p: [], ["folds.n_splits=13"],
                                            ["class 0 (control) has 12 subject(s), fewer than n_splits=13"]),
    "prepared_index_lists_a_missing_array": (_drop_array, [],
                                             ["1 subject file(s) listed in index.csv are missing", "sub-0003.npy"]),
    "prepared_array_with_pickled_objects": (_pickled_array, [],
                                            ["sub-0004.npy", "subject 'sub-0004'", "cannot be read"]),
    "splits_for_other_subjects_in_logdir": (_other_subjects_splits, [],
                                            ["splits.json was made for other subjects", "other-00"]),
    "logdir_under_a_file": (lambda l, p: [], ["logdir={tmp}/blocker/run"],
                            ["logdir", "blocker/run cannot be created", "blocker is a file"]),
    "autoresume_unknown_value": (lambda l, p: [], ["++args.autoresume=best"],
                                 ["args.autoresume must be null, 'last' or 'off'", "'best'"]),
}


@pytest.mark.parametrize("case", list(VAE_RUN_CASES))
def test_vae_run_refuses_bad_input(case: str, tmp_path: Path) -> None:
    setup, overrides, expected = VAE_RUN_CASES[case]
    prepared = tmp_path / "prepared"
    shutil.copytree(cached_prepared(24, True), prepared)
    logdir = tmp_path / "run"
    setup(logdir, prepared)
    (tmp_path / "blocker").write_text("a file, not a folder")
    before = _earlier_results(logdir) if not (logdir / "splits.json").exists() else folder_digest(logdir)
    inputs = folder_digest(prepared)
    overrides = [o.format(tmp=tmp_path) for o in overrides]
    if not any(o.startswith("logdir=") for o in overrides):
        overrides.append(f"logdir={logdir}")

    code, err = train("vae", [f"data.prepared_dir={prepared}", "stage.num_epochs=1", *TINY_VAE, *overrides])

    assert code == 1
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    _unchanged(logdir, before)
    assert folder_digest(prepared) == inputs


@pytest.mark.slow
def test_logdir_of_a_run_with_another_config_is_refused(tmp_path: Path) -> None:
    prepared = cached_prepared(24, True)
    logdir = tmp_path / "run"
    common = [f"logdir={logdir}", f"data.prepared_dir={prepared}", "folds.n_splits=2", "stage.num_epochs=1", *TINY_VAE]
    run_config("vae", common)
    before = folder_digest(logdir)

    code, err = train("vae", [*common, "stage.optimizer.lr=0.01"])

    assert code == 1
    assert f"logdir {logdir} holds a run with another config (differs in: stage.optimizer.lr)" in err
    assert "args.autoresume=off" in err
    _unchanged(logdir, before)


def test_latent_size_larger_than_the_encoder_output_is_refused() -> None:
    from fusion.models.vae import MultimodalVAE

    # tiny grid 14x16x13, channels (2, 2): the encoder ends in 2 x 4x4x4 = 128 features
    with pytest.raises(ConfigError, match=r"latent_dim 200 .*128"):
        try:
            MultimodalVAE(in_shape=(14, 16, 13), channels=(2, 2), head_channels=(2,), latent_dim=200)
        except ConfigError:
            raise
        else:
            raise AssertionError("MultimodalVAE accepted latent_dim 200 > 128 encoder features")


# ----------------------------------------------------------------------------- gCAM-CCL training run
@pytest.fixture(scope="module")
def ccl_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid small CCL cohort: 40 subjects, 12x12 FC (.npy), 20 SNPs (genotypes.csv)."""
    root = tmp_path_factory.mktemp("ccl_cohort")
    rng = np.random.default_rng(3)
    (root / "fc").mkdir()
    rows = []
    for k in range(N_CCL):
        a = rng.normal(size=(R, R)).astype(np.float32)
        np.save(root / "fc" / f"s{k:02d}.npy", (a + a.T) / 2)
        rows.append({"subject_id": f"s{k:02d}", "score": float(k), "fc_path": f"fc/s{k:02d}.npy"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    genotypes = pd.DataFrame(rng.integers(0, 3, size=(N_CCL, P)), columns=[f"rs{j}" for j in range(P)])
    genotypes.insert(0, "subject_id", [f"s{k:02d}" for k in range(N_CCL)])
    genotypes.to_csv(root / "genotypes.csv", index=False)
    return root


def _fc(name: str, array: np.ndarray, **kwargs) -> Callable[[Path], None]:
    def corrupt(root: Path) -> None:
        np.save(root / "fc" / name, array, **kwargs)
    return corrupt


def _asymmetric() -> np.ndarray:
    a = np.zeros((R, R), np.float32)
    a[0, 1] = 0.5
    return a


def _nan_fc() -> np.ndarray:
    a = np.zeros((R, R), np.float32)
    a[2, 2] = np.nan
    return a


def _genotypes(root: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    edit(pd.read_csv(root / "genotypes.csv", dtype={"subject_id": str})).to_csv(root / "genotypes.csv", index=False)


def _ccl_manifest(root: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    edit(pd.read_csv(root / "manifest.csv", dtype={"subject_id": str})).to_csv(root / "manifest.csv", index=False)


def _set_code(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.subject_id == "s37", "rs5"] = 3
    return frame


# id -> (corrupt the cohort, manifest inside it, extra overrides, substrings of stderr)
CCL_CASES: dict[str, tuple[Callable[[Path], None], str, list[str], list[str]]] = {
    "fc_non_square": (_fc("s03.npy", np.zeros((R, R + 1), np.float32)), "manifest.csv", [],
                      ["subject 's03'", "s03.npy", "must be square", "(12, 13)"]),
    "fc_non_symmetric": (_fc("s03.npy", _asymmetric()), "manifest.csv", [],
                         ["subject 's03'", "s03.npy", "not symmetric"]),
    "fc_wrong_roi_count": (_fc("s36.npy", np.zeros((R - 2, R - 2), np.float32)), "manifest.csv", [],
                           ["subject 's36'", "s36.npy", "expected 12 x 12 ROIs", "got 10 x 10"]),
    "fc_nan": (_fc("s04.npy", _nan_fc()), "manifest.csv", [], ["subject 's04'", "s04.npy", "non-finite", "[2, 2]"]),
    "fc_wrong_dtype_text": (_fc("s05.npy", np.full((R, R), "0.1")), "manifest.csv", [],
                            ["subject 's05'", "s05.npy", "expected real numbers", "<U3"]),
    "fc_missing_file": (lambda r: (r / "fc" / "s06.npy").unlink(), "manifest.csv", [],
                        ["1 FC file(s) not found", "'s06'", "s06.npy"]),
    "snp_code_outside_0_1_2": (lambda r: _genotypes(r, _set_code), "manifest.csv", [],
                               ["genotypes.csv", "subject 's37'", "SNP 'rs5'", "genotype code 3;", "expected 0, 1, 2"]),
    "subject_missing_from_genotypes": (lambda r: _genotypes(r, lambda g: g[g.subject_id != "s38"]), "manifest.csv", [],
                                       ["1 subject(s) missing from the genotype file", "s38", "genotypes.csv"]),
    "genotype_csv_with_a_duplicate_subject": (
        lambda r: _genotypes(r, lambda g: pd.concat([g, g[g.subject_id == "s02"]])), "manifest.csv", [],
        ["genotypes.csv", "subject 's02' appears 2 times", "one row per subject"]),
    "score_with_too_few_distinct_values": (lambda r: _ccl_manifest(r, lambda m: m.assign(score=5.0)), "manifest.csv",
                                           [], ["field 'score' has 1 distinct value", "too few"]),
    "unknown_label_value": (lambda r: _ccl_manifest(r, lambda m: m.drop(columns="score").assign(
        label=["0", "1"] * 19 + ["maybe", "1"])), "manifest.csv", [], ["subject 's38'", "field 'label'", "'maybe'"]),
    "class_left_empty_by_the_split": (lambda r: None, "manifest.csv", ["split.fractions=[0.9,0.05,0.05]"],
                                      ["split:", "has no subject of class"]),
    "empty_manifest_0_bytes": (lambda r: (r / "manifest.csv").write_text(""), "manifest.csv", [],
                               ["manifest.csv is empty (0 bytes)", "subject_id, score|label, fc_path"]),
    "empty_manifest_header_only": (lambda r: (r / "manifest.csv").write_text("subject_id,score,fc_path\n"),
                                   "manifest.csv", [], ["manifest.csv: no subjects"]),
    "manifest_paths_relative_to_another_folder": (_move_manifest, "elsewhere/manifest.csv",
                                                  ["data.genotypes={root}/genotypes.csv"],
                                                  ["elsewhere/manifest.csv", "none of its 16 relative file path(s)",
                                                   "'fc/s00.npy'", "resolved against the manifest's folder"]),
}


@pytest.mark.parametrize("case", list(CCL_CASES))
def test_ccl_run_refuses_bad_input(case: str, ccl_cohort: Path, tmp_path: Path) -> None:
    corrupt, manifest_name, extra, expected = CCL_CASES[case]
    root = tmp_path / "cohort"
    shutil.copytree(ccl_cohort, root)
    corrupt(root)
    logdir = tmp_path / "run"
    before = _earlier_results(logdir)
    extra = [arg.format(root=root) for arg in extra]

    code, err = train("ccl", [
        f"logdir={logdir}", f"data.manifest={root / manifest_name}", f"data.n_rois={R}", f"data.n_snps={P}",
        "stage.num_epochs=1", "split.repetitions=1", "callbacks.activation_maps=null", *extra,
    ])

    assert code == 1
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    _unchanged(logdir, before)


@pytest.mark.slow
def test_catalyst_dl_entry_point_exits_non_zero(ccl_cohort: Path, tmp_path: Path) -> None:
    """The real ``catalyst-dl run --hydra`` entry point: a config error before the run starts and a
    data error during it both end with exit code 1 and the message on stderr."""
    prepared = cached_prepared(24, True)
    code, err = catalyst_dl("vae", [f"logdir={tmp_path / 'vae'}", f"data.prepared_dir={prepared}",
                                    "+stage.num_epoch=3"])
    assert code == 1
    assert "ConfigError" in err and "unknown config key(s) ['stage.num_epoch']" in err
    assert not (tmp_path / "vae" / "configs").exists()  # refused before catalyst-dl dumps anything

    root = tmp_path / "cohort"
    shutil.copytree(ccl_cohort, root)
    _fc("s04.npy", _nan_fc())(root)
    logdir = tmp_path / "ccl"
    before = _earlier_results(logdir)
    code, err = catalyst_dl("ccl", [f"logdir={logdir}", f"data.manifest={root / 'manifest.csv'}", f"data.n_rois={R}",
                                    f"data.n_snps={P}", "callbacks.activation_maps=null"])
    assert code == 1
    assert "Error in call to target 'fusion.data.ccl_dataset.CCLDataset'" in err
    assert "InputError" in err and "subject 's04'" in err and "non-finite" in err
    _unchanged(logdir, before)
