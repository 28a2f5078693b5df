"""gCAM-CCL figures are written headless as valid PNGs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion.interpret import significance as sig
from fusion.report import ccl_figures as figs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_map_histogram_and_hub_figures(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 1, 1])
    fc = rng.random((4, 20, 20))
    means = figs.class_means(fc, labels)
    assert np.isclose(means[0].max(), 1.0, atol=0.5) and means[0].shape == (20, 20)
    paths = [
        figs.plot_fc_maps(tmp_path / "fc.png", {"Grad-CAM": means,
                                                "guided Grad-CAM": {c: m - 0.5 for c, m in means.items()}},
                          ["low", "high"]),
        figs.plot_snp_maps(tmp_path / "snp.png", {"Grad-CAM": figs.class_means(rng.random((4, 50)), labels)},
                           ["low", "high"], planted=[3, 4, 5]),
    ]
    edges, hists = sig.activation_histograms(fc.reshape(4, -1), labels, bins=10)
    paths.append(figs.plot_activation_histograms(tmp_path / "hist.png", edges, hists, ["low", "high"]))
    table = pd.DataFrame({"roi_i": [0, 0, 1], "roi_j": [1, 2, 2], "frequency": [0.8, 0.9, 1.0]})
    hubs = sig.hub_degrees(table, 20, ["A"] * 20)
    paths.append(figs.plot_hub_degrees(tmp_path / "hubs.png", hubs))
    paths.append(figs.plot_hub_degrees(tmp_path / "no_hubs.png", sig.hub_degrees(table.iloc[:0], 20)))
    for path in paths:
        assert _is_png(path), path
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_edges_to_matrix_is_symmetric():
    table = pd.DataFrame({"roi_i": [0, 1], "roi_j": [3, 2], "frequency": [0.8, 0.9]})
    matrix = figs.edges_to_matrix(table, 4)
    np.testing.assert_array_equal(matrix, matrix.T)
    assert matrix[0, 3] == 0.8 and matrix[2, 1] == 0.9 and matrix.sum() == pytest.approx(3.4)


@pytest.mark.slow
def test_connectome_plot_runs_headless(tmp_path):
    """A fresh interpreter with no display and no backend set still writes the PNGs."""
    script = f"""
import os, numpy as np, pandas as pd
os.environ.pop("DISPLAY", None); os.environ.pop("MPLBACKEND", None)
from fusion.report import ccl_figures as figs
coords = np.random.default_rng(0).uniform(-60, 60, (10, 3))
table = pd.DataFrame({{"roi_i": [0, 1], "roi_j": [5, 7], "frequency": [0.75, 1.0]}})
figs.plot_connectome(r"{tmp_path / 'c.png'}", table, coords, roi_networks=list("AABBCCDDEE"))
figs.plot_connectome(r"{tmp_path / 'empty.png'}", table.iloc[:0], coords)
i, j = np.triu_indices(10, 1)
many = pd.DataFrame({{"roi_i": i, "roi_j": j, "frequency": np.linspace(0.71, 1, len(i))}})
figs.plot_connectome(r"{tmp_path / 'many.png'}", many, coords, max_edges=5)
import matplotlib; print(matplotlib.get_backend())
"""
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "agg"
    assert _is_png(tmp_path / "c.png") and _is_png(tmp_path / "empty.png")
    assert _is_png(tmp_path / "many.png")
