"""gCAM-CCL figures and tables: one index base, labelled colour bars, Power network legends,
SNPs by chromosome:position."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion.data.power import NETWORKS, power_coords, power_networks, roi_names
from fusion.interpret import significance as sig
from fusion.interpret.ccl_maps import bim_positions, user_table
from fusion.report import ccl_figures as figs


@pytest.fixture
def captured(monkeypatch):
    """The figures the plotting functions would save, kept open for inspection."""
    kept = []

    def keep(fig, path):
        kept.append(fig)
        return Path(path)

    monkeypatch.setattr(figs, "save", keep)
    yield kept
    import matplotlib.pyplot as plt

    for fig in kept:
        plt.close(fig)


def test_network_blocks_group_the_power_rois_with_the_published_sizes():
    networks = power_networks()
    order, blocks = figs.network_blocks(networks)
    assert sorted(order.tolist()) == list(range(264))
    assert [name for name, _, _ in blocks] == list(NETWORKS)  # the atlas table's order
    sizes = {name: size for name, _, size in blocks}
    assert sizes == {"SMH": 30, "SMM": 5, "CO": 14, "AUD": 13, "DMN": 58, "MEM": 5, "VIS": 31, "FPN": 25,
                     "SAL": 18, "SUB": 13, "VAN": 9, "DAN": 11, "CER": 4, "UNC": 28}
    for name, start, size in blocks:
        members = order[start:start + size]
        assert {networks[i] for i in members} == {name} and list(members) == sorted(members)


def test_fc_maps_are_grouped_by_network_with_a_legend_and_labelled_colour_bars(captured, tmp_path):
    networks = power_networks()
    rng = np.random.default_rng(0)
    matrix = rng.random((264, 264))
    figs.plot_fc_maps(tmp_path / "fc.png", {"Grad-CAM": {0: matrix, 1: matrix}}, ["low", "high"], roi_networks=networks)
    (fig,) = captured
    order, blocks = figs.network_blocks(networks)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), matrix[np.ix_(order, order)])
    assert [t.get_text() for t in ax.get_xticklabels()] == [name for name, _, _ in blocks]
    legend_text = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "DMN: Default mode" in legend_text and len(legend_text) == 14
    colorbars = [a for a in fig.axes if a.get_ylabel()]  # colour-bar axes carry the label
    assert any("unitless" in a.get_ylabel() for a in colorbars)


def test_fc_maps_without_networks_count_rois_from_one(captured, tmp_path):
    figs.plot_fc_maps(tmp_path / "fc.png", {"Grad-CAM": {0: np.eye(5)}}, ["low"])
    image = captured[0].axes[0].images[0]
    assert image.get_extent() == [0.5, 5.5, 5.5, 0.5]  # ROI 1 is the first row and column
    with pytest.raises(Exception, match="roi_networks"):
        figs.plot_fc_maps(tmp_path / "x.png", {"Grad-CAM": {0: np.eye(5)}}, roi_networks=["A"] * 4)


def test_hub_figure_and_csv_name_rois_alike():
    edges = pd.DataFrame({"roi_i": [0, 0, 9], "roi_j": [9, 11, 11], "frequency": [0.8, 0.9, 1.0]})
    networks = power_networks()
    hubs = sig.hub_degrees(edges, 264, networks)
    table = user_table(hubs)
    assert list(table.columns) == ["roi_name", "roi_index0", "network", "degree"]
    top = table.head(3)
    # ROI at 0-based index 9 is the atlas's 10th ROI
    assert top.loc[top["roi_index0"] == 9, "roi_name"].item() == "ROI010"
    assert [f"{n} ({net})" for n, net in zip(top["roi_name"], top["network"])] == \
        [roi_names()[i] for i in top["roi_index0"]]
    edge_table = user_table(edges)
    assert edge_table[["roi_i_name", "roi_j_name"]].values.tolist()[0] == ["ROI001", "ROI010"]


def test_hub_figure_labels_match_the_csv(captured, tmp_path):
    edges = pd.DataFrame({"roi_i": [0, 0, 9], "roi_j": [9, 11, 11], "frequency": [0.8, 0.9, 1.0]})
    hubs = sig.hub_degrees(edges, 264, power_networks())
    figs.plot_hub_degrees(tmp_path / "h.png", hubs)
    labels = [t.get_text() for t in captured[0].axes[0].get_yticklabels()]
    table = user_table(hubs).head(3)
    assert labels == [f"{n} ({net})" for n, net in zip(table["roi_name"], table["network"])]


def _write_bim(path: Path, rows) -> Path:
    path.write_text("".join(f"{c}\t{i}\t0.0\t{bp}\tA\tG\n" for c, i, bp in rows))
    return path


def test_bim_positions_follow_the_snp_ids(tmp_path):
    bim = _write_bim(tmp_path / "g.bim", [("1", "rsA", 1500), ("1", "rsB", 2500), ("2", "rsC", 700)])
    assert bim_positions(bim) == ["1:1500", "1:2500", "2:700"]
    assert bim_positions(bim, ["rsC", "rsA"]) == ["2:700", "1:1500"]
    assert bim_positions(bim, ["rsX"]) is None
    unplaced = _write_bim(tmp_path / "u.bim", [("0", "rsA", 0), ("0", "rsB", 0)])
    assert bim_positions(unplaced) is None


def test_snp_tables_and_figures_use_chromosome_positions(captured, tmp_path):
    positions = [f"{1 + i // 5}:{1000 * (i % 5 + 1)}" for i in range(20)]
    frame = pd.DataFrame({"index": [7, 0], "id": ["snp7", "snp0"], "frequency": [1.0, 0.8]})
    table = user_table(frame, positions)
    assert list(table.columns) == ["snp_index0", "id", "position", "frequency"]
    assert table["position"].tolist() == ["2:3000", "1:1000"]
    lines = {0: np.arange(20.0), 1: np.ones(20)}
    figs.plot_snp_maps(tmp_path / "s.png", {"Grad-CAM": lines}, ["low", "high"], planted=[7],
                       snp_positions=positions)
    ax = captured[0].axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["1:1000", "2:1000", "3:1000", "4:1000"]  # one tick where each chromosome starts
    assert "chromosome:position" in ax.get_xlabel()
    x, _ = ax.lines[0].get_data()
    assert x[0] == 1  # SNP numbers count from 1
    planted = [ln for ln in ax.lines if ln.get_label() == "planted"][0]
    assert planted.get_xdata().tolist() == [8]
    figs.plot_snp_maps(tmp_path / "n.png", {"Grad-CAM": lines}, ["low", "high"])
    assert "1 = first SNP" in captured[1].axes[0].get_xlabel()


@pytest.mark.slow
def test_connectome_has_a_network_legend_and_a_labelled_colour_bar(captured, tmp_path):
    networks = power_networks()
    dmn = [i for i, n in enumerate(networks) if n == "DMN"][:2]
    vis = [i for i, n in enumerate(networks) if n == "VIS"][:1]
    edges = pd.DataFrame({"roi_i": [dmn[0], dmn[1]], "roi_j": [vis[0], vis[0]], "frequency": [0.8, 1.0]})
    figs.plot_connectome(tmp_path / "c.png", edges, power_coords(), roi_networks=networks)
    fig = captured[0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["DMN: Default mode", "VIS: Visual"]  # the networks of the drawn ROIs only
    labels = [a.get_ylabel() for a in fig.axes]
    assert "share of the class's subjects" in labels
