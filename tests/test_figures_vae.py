"""VAE figures: mean ROC with a +-1 SD band, 1-based modality labels, labelled colour bars, and
`fusion vae-analyze` taking its defaults from the run."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from fusion import io
from fusion.data.neuromark import modality_domains
from fusion.report import vae_figures as figs


@pytest.fixture
def captured(monkeypatch):
    kept = []

    def keep(path, fig, **kwargs):
        kept.append(fig)
        return Path(path)

    monkeypatch.setattr(figs, "save_figure", keep)
    yield kept
    import matplotlib.pyplot as plt

    for fig in kept:
        plt.close(fig)


def test_mean_roc_of_a_perfect_and_a_reversed_fold():
    y = np.array([0, 0, 0, 1, 1, 1])
    perfect, reversed_ = (y, y.astype(float)), (y, -y.astype(float))
    grid, mean, std = figs.mean_roc([perfect, reversed_], grid=np.array([0.0, 0.25, 0.5, 0.99, 1.0]))
    # perfect: TPR 1 at every FPR > 0; reversed: TPR 0 until FPR 1
    np.testing.assert_allclose(mean, [0.0, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(std, [0.0, 0.5, 0.5, 0.5, 0.0])


def test_mean_roc_of_identical_folds_is_that_fold_with_no_spread():
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    s = y + rng.normal(size=40)
    grid, mean, std = figs.mean_roc([(y, s), (y, s), (y, s)])
    fpr, tpr, _ = roc_curve(y, s)
    inside = grid > 0
    np.testing.assert_allclose(mean[inside], np.interp(grid[inside], fpr, tpr))
    np.testing.assert_allclose(std, 0.0, atol=1e-12)
    # the area under the mean curve of one fold is that fold's AUC
    from sklearn.metrics import roc_auc_score

    assert np.trapezoid(mean, grid) == pytest.approx(roc_auc_score(y, s), abs=0.01)


def test_roc_figure_draws_the_mean_and_its_band(captured, tmp_path):
    rng = np.random.default_rng(1)
    curves = []
    for _ in range(4):
        y = rng.integers(0, 2, 30)
        curves.append((y, y + rng.normal(size=30)))
    figs.plot_roc_curves(curves, tmp_path / "roc.png", names=[f"fold_{k:02d}" for k in range(4)])
    ax = captured[0].axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert any(label.startswith("mean ROC (AUC") for label in labels)
    assert sum(label.startswith("fold_0") for label in labels) == 4
    band = [c for c in ax.collections if c.get_label() == "mean ± 1 SD over folds"]
    assert len(band) == 1
    grid, mean, std = figs.mean_roc(curves)
    mean_line = [line for line in ax.lines if line.get_label().startswith("mean ROC")][0]
    np.testing.assert_allclose(mean_line.get_ydata(), mean)


def test_tsne_labels_count_icns_from_one(captured, tmp_path):
    domains = modality_domains()
    modality = np.repeat(np.arange(54), 3)
    coords = np.random.default_rng(0).normal(size=(len(modality), 2))
    figs.plot_latent_tsne(coords, modality, domains, tmp_path / "t.png")
    texts = {t.get_text() for t in captured[0].axes[0].texts}
    assert {str(k) for k in range(1, 54)} | {"GM"} <= texts
    assert "0" not in texts and "54" not in texts
    assert figs.modality_short_name(0, domains) == "1" and figs.modality_short_name(53, domains) == "GM"


def test_brain_maps_have_a_labelled_colour_bar(captured, tmp_path):
    affine = np.array([[16.0, 0, 0, -72], [0, 16.0, 0, -104], [0, 0, 16.0, -60], [0, 0, 0, 1]])
    volume = np.zeros((9, 11, 10), np.float32)
    volume[4, 5, 5], volume[3, 6, 4] = 1.0, -0.5
    figs.plot_brain_map(volume, affine, tmp_path / "b.png", title="x")
    labels = [a.get_ylabel() for a in captured[0].axes] + [a.get_xlabel() for a in captured[0].axes]
    assert figs.GROUP_MAP_UNIT in labels


def _run_with_analysis_node(tmp_path, node):
    logdir = tmp_path / "run"
    (logdir / "configs").mkdir(parents=True)
    io.write_json(logdir / "configs" / "_config.json", {"callbacks": {"analysis": node}})
    return logdir


def _args(logdir, *argv):
    from fusion.cli.vae_analyze import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--logdir", str(logdir), *argv])


def test_vae_analyze_takes_its_defaults_from_the_run(tmp_path):
    from fusion.cli.vae_analyze import RUN_DEFAULTS, resolve_settings

    logdir = _run_with_analysis_node(tmp_path, {"seed": 42, "tsne_max_iter": 750, "tsne_max_subjects": 40,
                                                "tsne_perplexity": 30.0, "fold": 0, "percentile": 99.0})
    settings = resolve_settings(_args(logdir))
    assert (settings["seed"], settings["tsne_iter"], settings["tsne_max_subjects"]) == (42, 750, 40)
    assert settings["sources"]["seed"] == "run config" and settings["sources"]["top_k"] == "default"
    assert settings["top_k"] == RUN_DEFAULTS["top_k"][1]
    given = resolve_settings(_args(logdir, "--seed", "7", "--tsne-all-subjects"))
    assert given["seed"] == 7 and given["sources"]["seed"] == "command line"
    assert given["tsne_max_subjects"] is None and given["tsne_iter"] == 750
    bare = tmp_path / "bare"
    bare.mkdir()
    assert resolve_settings(_args(bare))["seed"] == RUN_DEFAULTS["seed"][1]


def test_vae_analyze_writes_its_own_report_unless_told(tmp_path, monkeypatch):
    import fusion.workflows.vae_analysis as vae_report
    from fusion.cli import vae_analyze

    calls = []

    def fake(logdir, settings, **kwargs):
        calls.append({**kwargs, "seed": settings.seed})
        return {"analysis": {"skipped": {}}}

    monkeypatch.setattr(vae_report, "analyze_vae_run", fake)
    logdir = _run_with_analysis_node(tmp_path, {"seed": 42})
    assert vae_analyze.run(_args(logdir)) == 0
    assert calls[-1]["report_name"] == "report_analyze.md" and calls[-1]["seed"] == 42
    assert vae_analyze.run(_args(logdir, "--replace-report")) == 0
    assert calls[-1]["report_name"] == "report.md"
