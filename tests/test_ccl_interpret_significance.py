"""Significance rule (0.05 x max, > 70% of a class), FC edges, hubs, SNPs and recovery scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusion import io
from fusion.errors import ConfigError, InputError
from fusion.interpret import significance as sig
from fusion.interpret.recovery import (
    load_ground_truth,
    precision_recall,
    recovery_scores,
)


def _maps_kept_in(n_subjects: int, kept_counts: list[int]) -> np.ndarray:
    """Maps where feature f is above threshold in exactly kept_counts[f] subjects.

    Feature 0 is the subject's maximum (value 1) in every subject.
    """
    maps = np.zeros((n_subjects, len(kept_counts) + 1))
    maps[:, 0] = 1.0
    for f, count in enumerate(kept_counts, start=1):
        maps[:count, f] = 0.5  # kept (> 0.05 x 1)
        maps[count:, f] = 0.04  # not kept
    return maps


def test_exactly_70_percent_is_not_significant_71_is():
    labels = np.zeros(100, dtype=int)
    maps = _maps_kept_in(100, [70, 71, 100, 0])
    table = sig.significant_snps(maps, labels)[0]
    assert sorted(table["index"]) == [0, 2, 3]
    assert dict(zip(table["index"], table["frequency"])) == {0: 1.0, 2: 0.71, 3: 1.0}
    # 7 of 10 is exactly 70%: not significant; 8 of 10 is.
    table = sig.significant_snps(_maps_kept_in(10, [7, 8]), np.zeros(10, int))[0]
    assert sorted(table["index"]) == [0, 2]


def test_relative_threshold_is_strict_and_per_subject():
    maps = np.array([[10.0, 0.5, 0.51, -3.0], [2.0, 0.11, 0.09, 0.0], [0.0, 0.0, 0.0, 0.0]])
    kept = sig.kept_mask(maps, fraction=0.05)
    np.testing.assert_array_equal(
        kept,
        [[True, False, True, False], [True, True, False, False], [False, False, False, False]],
    )
    # A subject with no positive value keeps nothing (not "the least negative" features).
    assert not sig.kept_mask(np.array([[-1.0, -0.01, -5.0]])).any()


def test_thresholds_are_configurable_and_per_class():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    maps = np.zeros((8, 3))
    maps[:, 0] = 1.0
    maps[:4, 1] = 0.3  # kept by class 0 only
    maps[4:, 2] = 0.3  # kept by class 1 only
    tables = sig.significant_snps(maps, labels, snp_ids=["rsA", "rsB", "rsC"])
    assert list(tables[0]["id"]) == ["rsA", "rsB"] and list(tables[1]["id"]) == ["rsA", "rsC"]
    tables = sig.significant_snps(maps, labels, fraction=0.5)  # 0.3 < 0.5 x 1: dropped
    assert list(tables[0]["index"]) == [0] and list(tables[1]["index"]) == [0]
    with pytest.raises(ConfigError):
        sig.significant_snps(maps, labels, class_fraction=1.0)
    with pytest.raises(InputError, match="3 SNPs"):
        sig.significant_snps(maps, labels, snp_ids=["a"])
    with pytest.raises(InputError, match="one entry per subject"):
        sig.significant_snps(maps, labels[:5])
    bad = maps.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match=r"subjects \[3\]"):
        sig.significant_snps(bad, labels)


def test_fc_maps_are_symmetrised_and_edges_listed_once():
    n_rois = 6
    maps = np.full((5, n_rois, n_rois), 0.01)
    maps[:, 1, 4] = 1.0  # only one triangle carries the value: averaged with 0.01 to 0.505
    maps[:, 2, 0] = 0.6  # lower triangle: reported as (0, 2) with average 0.305
    maps[:, 3, 3] = 50.0  # diagonal: not an edge, not the maximum
    networks = ["A", "A", "B", "B", "C", "C"]
    values, roi_i, roi_j = sig.symmetric_edges(maps)
    assert values.shape == (5, 15) and (roi_i < roi_j).all()
    assert values[0, list(zip(roi_i, roi_j)).index((1, 4))] == pytest.approx(0.505)
    table = sig.significant_edges(maps, np.zeros(5, int), fraction=0.5, roi_networks=networks)[0]
    assert list(zip(table["roi_i"], table["roi_j"])) == [(0, 2), (1, 4)]
    assert list(table["network_i"]) == ["A", "A"] and list(table["network_j"]) == ["B", "C"]
    hubs = sig.hub_degrees(table, n_rois, networks)
    assert dict(zip(hubs["roi"], hubs["degree"])) == {0: 1, 1: 1, 2: 1, 3: 0, 4: 1, 5: 0}
    assert list(hubs.columns) == ["roi", "network", "degree"]


def test_hub_degrees_count_edges_per_roi():
    edges = pd.DataFrame({"roi_i": [0, 0, 0, 1], "roi_j": [1, 2, 3, 2], "frequency": 1.0})
    hubs = sig.hub_degrees(edges, 5)
    assert list(hubs["roi"][:3]) == [0, 1, 2] and list(hubs["degree"]) == [3, 2, 2, 1, 0]


def test_activation_histograms_average_per_class():
    maps = np.array([[1.0, 0.5, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0], [4.0, -1.0, 0.0, 4.0]])
    edges, hists = sig.activation_histograms(maps, np.array([0, 0, 1]), bins=2)
    np.testing.assert_allclose(edges, [0.0, 0.5, 1.0])
    # class 0: subject 1 has [1, .5, 0, 0] -> bins [0, .5): 2, [.5, 1]: 2; subject 2 all in top.
    np.testing.assert_allclose(hists[0], [0.25, 0.75])
    np.testing.assert_allclose(hists[1], [0.5, 0.5])


def test_write_significance_names_files_by_class(tmp_path):
    tables = sig.significant_snps(_maps_kept_in(10, [9]), np.zeros(10, int))
    (path,) = sig.write_significance(tmp_path, "significant_snps", tables, ["low"])
    assert path.name == "significant_snps_low.csv"
    assert list(pd.read_csv(path)["index"]) == [0, 1]


def test_precision_and_recall_on_a_constructed_example(tmp_path):
    found = {
        0: pd.DataFrame({"roi_i": [1, 3], "roi_j": [2, 4]}),
        1: pd.DataFrame({"roi_i": [6, 3], "roi_j": [5, 4]}),  # (6, 5) == (5, 6)
    }
    snps = {0: pd.DataFrame({"index": [10, 11, 12, 13]}), 1: pd.DataFrame({"index": [14]})}
    truth_path = io.write_json(
        tmp_path / "ground_truth.json",
        {"edges": [[2, 1], [3, 4], [7, 8], [9, 10]], "snps": [10, 11, 14, 20, 21]},
    )
    truth = load_ground_truth(truth_path)
    scores = recovery_scores(found, snps, truth)
    assert scores["edge_precision"] == pytest.approx(2 / 3)
    assert scores["edge_recall"] == pytest.approx(2 / 4)
    assert scores["snp_precision"] == pytest.approx(3 / 5)
    assert scores["snp_recall"] == pytest.approx(3 / 5)
    assert (scores["n_edges_found"], scores["n_snps_planted"]) == (3, 5)
    one = recovery_scores(found, snps, truth, classes=1)
    assert one["edge_precision"] == pytest.approx(1 / 2) and one["snp_recall"] == pytest.approx(1 / 5)
    assert precision_recall(set(), {1}) == (0.0, 0.0)
    io.write_json(tmp_path / "bad.json", {"edges": [[1, 1]], "snps": []})
    with pytest.raises(InputError, match="edge"):
        load_ground_truth(tmp_path / "bad.json")
    with pytest.raises(InputError, match="does not exist"):
        load_ground_truth(tmp_path / "missing.json")
