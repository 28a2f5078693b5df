"""What ``pip install .`` ships: the science, the adapters and the configs under names of their
own (no generic ``runners`` / ``callbacks`` in site-packages), a version, and a ``fusion run``
that finds the shipped configs from any folder."""

import configparser
import os
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


INSTALLED_RUN = """
import sys
from pathlib import Path
# As in a plain install: no editable-install finder that could find the checkout's modules instead.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", type(f).__module__)]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h)]
sys.path[:] = [p for p in sys.path if "__editable__" not in p]
sys.path_importer_cache.clear()
from catalyst.utils.sys import import_module
from hydra.utils import get_class
from fusion.cli.launch import config_dir, runners_dir
site = Path(sys.argv[1])
assert runners_dir() == site / "fusion_runners", runners_dir()
assert config_dir() == site / "fusion_conf", config_dir()
import_module(str(runners_dir()))  # what catalyst-dl run does with args.expdir, before building the runner
for target in ("fusion_runners.vae.VAERunner", "fusion_runners.ccl.CCLRunner",
               "fusion_callbacks.folds.FoldSplitCallback"):
    get_class(target)
print("OK")
"""


def test_installed_runners_survive_catalysts_expdir_import(wheel, tmp_path):
    """A non-editable install names the runners' folder ``fusion_runners``; catalyst-dl imports
    ``args.expdir`` by path under that very name, and the runners must still import after it."""
    site = tmp_path / "site"
    wheel.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", INSTALLED_RUN, str(site)], capture_output=True, text=True,
                         cwd=tmp_path, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr[-2000:]
