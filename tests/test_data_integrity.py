"""Input integrity: corrupt, cut, misplaced and mismatched inputs are refused with the file named.

Each VAE case goes through ``fusion prepare`` as a user runs it (exit code 2, the file in the
message) and checks that an earlier prepared folder is byte-identical afterwards. The gzip
checks are compared with an independent reference: :mod:`zlib`'s CRC32 of the decompressed data
against the trailer the file carries.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion.cli import main as fusion_main
from fusion.data.ccl_manifest import load_ccl_manifest
from fusion.data.genotypes import read_plink, write_plink
from fusion.data.integrity import file_problem, path_problem, verify_compressed
from fusion.data.testing import (
    cached_prepared,
    cached_vae_cohort,
    copy_cohort,
    folder_digest,
)
from fusion.errors import InputError


def _flip_byte(path: Path) -> None:
    """Flip one bit of one byte in the middle of the compressed data."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x04
    path.write_bytes(bytes(raw))


def _cut(n_bytes: int) -> Callable[[Path], None]:
    def cut(path: Path) -> None:
        path.write_bytes(path.read_bytes()[:-n_bytes])
    return cut


def _replace_by_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _symlink_loop(path: Path) -> None:
    path.unlink()
    other = path.with_name("loop-partner.nii.gz")
    os.symlink(other, path)
    os.symlink(path, other)


def _broken_link(path: Path) -> None:
    path.unlink()
    os.symlink(path.with_name("moved-away.nii.gz"), path)


# id -> (damage done to sub-0005's ICN file, substrings of the message besides the file's path)
CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "one_flipped_byte": (_flip_byte, ["is corrupt"]),
    "cut_by_4_bytes": (_cut(4), ["truncated", "cannot be read in full"]),
    "cut_by_9_bytes": (_cut(9), ["truncated", "cannot be read in full"]),
    "directory": (_replace_by_directory, ["is a directory; expected a file"]),
    "symlink_loop": (_symlink_loop, ["is a symbolic link loop"]),
    "broken_symlink": (_broken_link, ["is a broken symbolic link", "moved-away.nii.gz"]),
    "missing_file": (lambda p: p.unlink(), ["does not exist"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_prepare_refuses_a_damaged_input(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    damage, expected = CASES[case]
    manifest = copy_cohort(cached_vae_cohort(24, True), tmp_path / "cohort")
    out = tmp_path / "prepared"
    shutil.copytree(cached_prepared(24, True), out)  # an earlier, good preparation
    before = folder_digest(out)
    victim = manifest.parent / "sub-0005" / "icn.nii.gz"
    damage(victim)
    capsys.readouterr()

    code = fusion_main(["prepare", "--manifest", str(manifest), "--out", str(out), "--no-progress"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("fusion prepare: error:")
    assert "subject 'sub-0005'" in err and str(victim) in err, err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert "sub-0004" not in err  # only the damaged file is blamed
    assert folder_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort", "prepared"]  # no staging left behind


def test_flipped_byte_that_nibabel_accepts_is_caught(tmp_path: Path) -> None:
    """The case of the issue: nibabel reads the image of a file with a flipped byte without a word
    (it never reaches the gzip trailer), while the CRC32 of the data no longer matches the trailer."""
    import nibabel as nib

    src = cached_vae_cohort(24, True).parent / "sub-0001" / "icn.nii.gz"
    raw = src.read_bytes()
    crc, isize = struct.unpack("<II", raw[-8:])
    data = gzip.decompress(raw)
    assert zlib.crc32(data) == crc and len(data) % 2**32 == isize  # the reference: the trailer is right
    for offset in range(len(raw) // 2, len(raw) - 8):  # a flip whose image still decodes in full
        bad = bytearray(raw)
        bad[offset] ^= 0x01
        try:  # decode only what the image needs, as nibabel does
            flipped = zlib.decompressobj(wbits=31).decompress(bytes(bad), len(data))
        except zlib.error:
            continue
        if len(flipped) == len(data) and flipped != data:
            break
    else:
        raise AssertionError("no single-bit flip that decodes to a full image")
    path = tmp_path / "icn.nii.gz"
    path.write_bytes(bytes(bad))
    assert zlib.crc32(flipped) != crc  # independent check: the image no longer matches its CRC
    image = nib.load(str(path)).get_fdata()  # nibabel takes it, with other numbers ...
    assert image.shape == nib.load(str(src)).shape and not np.array_equal(image, nib.load(str(src)).get_fdata())
    problem = verify_compressed(path)
    assert problem is not None and problem.startswith("is corrupt")  # ... the full check does not
    assert verify_compressed(src) is None


def test_path_problems_are_distinct(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_bytes(b"x")
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    messages = {
        "missing": path_problem(tmp_path / "missing"),
        "folder": path_problem(tmp_path / "folder"),
        "loop": path_problem(tmp_path / "a"),
        "under_file": path_problem(tmp_path / "file" / "x"),
    }
    assert messages["missing"] == "does not exist"
    assert messages["folder"].startswith("is a directory")
    assert messages["loop"].startswith("is a symbolic link loop")
    assert messages["under_file"].startswith("cannot be reached: a folder in its path is a file")
    assert len(set(messages.values())) == 4
    assert path_problem(tmp_path / "file") is None and file_problem(tmp_path / "file") is None  # plain, uncompressed


def test_bz2_corruption_is_caught(tmp_path: Path) -> None:
    import bz2

    data = np.random.default_rng(0).normal(size=20000).astype(np.float32).tobytes()
    good = bz2.compress(data)
    (tmp_path / "ok.nii.bz2").write_bytes(good)
    (tmp_path / "cut.nii.bz2").write_bytes(good[:-5])
    assert verify_compressed(tmp_path / "ok.nii.bz2") is None
    assert "truncated" in verify_compressed(tmp_path / "cut.nii.bz2")


def test_tsv_manifest_prepares_like_the_csv(tmp_path: Path) -> None:
    """The same cohort described by a tab-separated manifest gives byte-identical subject arrays."""
    manifest = copy_cohort(cached_vae_cohort(24, True), tmp_path / "cohort")
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    tsv = manifest.with_suffix(".tsv")
    frame.to_csv(tsv, sep="\t", index=False)
    manifest.unlink()
    out = tmp_path / "prepared_tsv"
    assert fusion_main(["prepare", "--manifest", str(tsv), "--out", str(out), "--no-progress"]) == 0
    reference = folder_digest(cached_prepared(24, True))
    digest = folder_digest(out)
    arrays = [k for k in reference if k.endswith(".npy")]
    assert len(arrays) == 25  # 24 subjects + scales.npy
    assert {k: digest[k] for k in arrays} == {k: reference[k] for k in arrays}
    index = pd.read_csv(out / "index.csv")
    assert list(index.columns) == ["subject_id", "label", "path", "age", "sex"]


# ----------------------------------------------------------------------------- genotypes
N, P = 10, 7  # 10 individuals: 3 bytes per SNP; 7 SNPs (prime): a wrong count fits only one of the files


def _plink_set(root: Path) -> Path:
    rng = np.random.default_rng(0)
    ids = [f"s{k:02d}" for k in range(N)]
    return write_plink(root / "genotypes.bed", rng.integers(0, 3, size=(N, P)).astype(float), ids,
                       [f"rs{j}" for j in range(P)])


def _drop_lines(path: Path, n: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-n]))


def _add_line(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines + [lines[-1].replace("s09", "s10").replace("rs6", "rs7")]))


@pytest.mark.parametrize("damage, blamed, text", [
    (lambda bed: _drop_lines(bed.with_suffix(".bim"), 1), ".bim", "lists 6 SNP(s), but"),
    (lambda bed: _add_line(bed.with_suffix(".bim")), ".bim", "lists 8 SNP(s), but"),
    (lambda bed: _drop_lines(bed.with_suffix(".fam"), 2), ".fam", "lists 8 individual(s), but"),
    (lambda bed: _drop_lines(bed.with_suffix(".fam"), 6), ".bim", "or .fam file"),  # both would fit: both named
    (lambda bed: bed.write_bytes(bed.read_bytes()[:-1]), ".bed", "truncated or corrupt"),
    (lambda bed: bed.write_bytes(b"\x00\x00" + bed.read_bytes()[2:]), ".bed", "magic bytes"),
])
def test_plink_mismatch_blames_the_file_at_fault(tmp_path: Path, damage, blamed: str, text: str) -> None:
    bed = _plink_set(tmp_path)
    assert read_plink(bed).values.shape == (N, P)
    damage(bed)
    with pytest.raises(InputError) as info:
        read_plink(bed)
    message = str(info.value)
    assert message.startswith(f"PLINK {blamed} file {bed.with_suffix(blamed)}"), message
    assert text in message


def _ccl_cohort(root: Path, n_rois: int = 6, n: int = N) -> Path:
    rng = np.random.default_rng(1)
    (root / "fc").mkdir(parents=True)
    rows = []
    for k in range(n):
        a = rng.normal(size=(n_rois, n_rois)).astype(np.float32)
        np.save(root / "fc" / f"s{k:02d}.npy", (a + a.T) / 2)
        rows.append({"subject_id": f"s{k:02d}", "score": float(k), "fc_path": f"fc/s{k:02d}.npy"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_two_genotype_sets_beside_the_manifest_need_a_choice(tmp_path: Path) -> None:
    manifest = _ccl_cohort(tmp_path)
    bed = _plink_set(tmp_path)
    csv = read_plink(bed)
    frame = pd.DataFrame(2 - csv.values, columns=csv.snp_ids)  # a different genotype matrix
    frame.insert(0, "subject_id", csv.subject_ids)
    frame.to_csv(tmp_path / "genotypes.csv", index=False)
    with pytest.raises(InputError) as info:
        load_ccl_manifest(manifest, n_rois=6, n_snps=P)
    message = str(info.value)
    assert str(bed) in message and str(tmp_path / "genotypes.csv") in message and "data.genotypes" in message
    from_csv = load_ccl_manifest(manifest, genotypes=tmp_path / "genotypes.csv", n_rois=6, n_snps=P)
    from_bed = load_ccl_manifest(manifest, genotypes=bed, n_rois=6, n_snps=P)
    np.testing.assert_array_equal(from_csv.genotypes, 2 - from_bed.genotypes)
    assert from_csv.genotype_source.endswith("genotypes.csv") and from_bed.genotype_source.endswith("genotypes.bed")


def test_ccl_fc_path_that_is_a_directory_is_named(tmp_path: Path) -> None:
    manifest = _ccl_cohort(tmp_path)
    _plink_set(tmp_path)
    (tmp_path / "fc" / "s09.npy").unlink()
    (tmp_path / "fc" / "s09.npy").mkdir()
    with pytest.raises(InputError, match=r"subject 's09': .*s09.npy is a directory"):
        load_ccl_manifest(manifest, n_rois=6, n_snps=P)
