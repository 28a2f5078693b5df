"""What ``pip install .`` ships: the science, the adapters and the configs under names of their
own (no generic ``runners`` / ``callbacks`` in site-packages), a version, and a ``fusion run``
that finds the shipped configs from any folder."""

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import fusion

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    str(REPO), "-w", str(out)], check=True, cwd=build, capture_output=True)
    (path,) = out.glob("fusion-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_has_only_fusion_names_at_the_top(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert tops == {"fusion", "fusion_runners", "fusion_callbacks", "fusion_conf",
                    f"fusion-{fusion.__version__}.dist-info"}


def test_wheel_ships_every_module_and_config(wheel):
    names = set(wheel.namelist())
    for folder, package in [("fusion", "fusion"), ("runners", "fusion_runners"),
                            ("callbacks", "fusion_callbacks"), ("conf", "fusion_conf")]:
        suffixes = ("*.py", "*.yaml")
        for suffix in suffixes:
            for path in (REPO / folder).rglob(suffix):
                rel = path.relative_to(REPO / folder).as_posix()
                assert f"{package}/{rel}" in names, f"{folder}/{rel} is not in the wheel: list its package in setup.cfg"
    assert f"fusion-{fusion.__version__}.dist-info/licenses/LICENSE" in names or any(
        n.endswith("LICENSE") for n in names)


def test_license_matches_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["metadata"]["license"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def test_version_flag():
    out = subprocess.run([str(BIN / "fusion"), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"fusion {fusion.__version__}"


def test_fusion_run_composes_the_shipped_config_from_another_folder(tmp_path):
    out = subprocess.run([str(BIN / "fusion"), "run", "vae", "--cfg", "job", "stage.num_epochs=3"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "_target_: fusion_runners.vae.VAERunner" in out.stdout
    assert f"expdir: {REPO / 'runners'}" in out.stdout
    assert "num_epochs: 3" in out.stdout
    assert not (tmp_path / "runs").exists()  # --cfg job prints the config and trains nothing
