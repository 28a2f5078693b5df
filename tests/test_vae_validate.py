"""The validation family of VAE cohorts and ``fusion vae-validate``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fusion.cli import main
from fusion.cli.vae_validate import markdown, summarise, univariate_reference
from fusion.data.synthetic_volumes import expected_effect, make_vae_cohort
from fusion.data.testing import cached_prepared
from fusion.data.vae_variants import VAE_VARIANTS, VAECohortKnobs, variant_settings
from fusion.data.volume_design import build_design
from fusion.errors import ConfigError


def test_unknown_variant_lists_the_valid_names(capsys) -> None:
    with pytest.raises(ConfigError, match="expected one of .*'site_confound'.*'null'"):
        variant_settings("nul")
    assert main(["vae-validate", "--variants", "embedded,nul", "--out", "unused"]) == 2
    assert "neuromark_grid" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="effect_kind"):
        make_vae_cohort("unused", size="tiny", effect_kind="blob")
    assert len([v for v in VAE_VARIANTS if v not in ("embedded", "null")]) >= 5


def test_subregion_effect_is_a_narrow_off_centre_part_of_the_node() -> None:
    design = build_design("tiny", VAECohortKnobs())
    node = expected_effect(design)
    sub = expected_effect(build_design("tiny", VAECohortKnobs(effect_kind="subregion")))
    y_mm = design.axes[1][None, :, None]
    for k, n in design.effect_node.items():
        assert np.abs(sub[..., k]).sum() < 0.5 * np.abs(node[..., k]).sum()
        shift = (sub[..., k] * y_mm).sum() / sub[..., k].sum() - (node[..., k] * y_mm).sum() / node[..., k].sum()
        assert shift > 0.4 * 0.75 * design.node_sigma[n]   # moved +y by ~0.75 node widths (the mask clips some)
    np.testing.assert_array_equal(sub[..., 53], node[..., 53])   # the GM effect is unchanged


def test_network_nodes_come_from_the_domain_networks() -> None:
    base = build_design("tiny", VAECohortKnobs())
    net = build_design("tiny", VAECohortKnobs(network_nodes=3, icn_sigma_scale=0.65))
    assert len(net.node_icn) == len(base.node_icn) + 3 * 53
    assert np.allclose(net.node_sigma[: 2], 0.65 * base.node_sigma[:2])
    assert net.effect_node.keys() == base.effect_node.keys()


def test_site_variant_writes_a_site_correlated_with_diagnosis(tmp_path) -> None:
    spec = variant_settings("site_confound")
    manifest = make_vae_cohort(tmp_path / "c", size="tiny", n_subjects=40, seed=1, progress=False, **spec["knobs"])
    table = pd.read_csv(manifest)
    patients = table["label"] == "patient"
    share = (table.loc[patients, "site"] == "site2").mean() - (table.loc[~patients, "site"] == "site2").mean()
    assert share > 0.3   # (1 + 0.6) / 2 - (1 - 0.6) / 2 = 0.6 expected
    assert "site" not in pd.read_csv(make_vae_cohort(tmp_path / "d", size="tiny", n_subjects=6, progress=False)).columns


def test_univariate_reference_finds_the_planted_modalities() -> None:
    ref = univariate_reference(cached_prepared(24, True))
    assert ref["modality_recall"] >= 0.8 and ref["map_correlation"] > 0.3
    null = univariate_reference(cached_prepared(24, False))
    assert "modality_recall" not in null and null["planted_modalities"] == []


def test_summary_means_over_seeds_and_table() -> None:
    def rec(row, auc, best, p):
        return {"row": row, "vae_auc": auc, "best_pca_auc": best, "pca_early": best - 0.1, "pca_late": best,
                "permutation_p": p, "vae_modality_recall": 1.0, "vae_map_correlation": 0.5, "interpretable": p < 0.05,
                "univariate": {"modality_recall": 1.0, "map_correlation": 0.6}, "seconds": 60.0}

    rows = summarise({"a-s0": rec("a", 0.8, 0.7, 0.01), "a-s1": rec("a", 0.9, 0.8, 0.01),
                      "null-s0": rec("null", 0.5, 0.5, 0.4)})
    a = next(r for r in rows if r["row"] == "a")
    assert a["vae_auc"] == pytest.approx(0.85) and a["vae_minus_best_pca"] == pytest.approx(0.1)
    assert a["minutes"] == pytest.approx(2.0)
    assert next(r for r in rows if r["row"] == "null")["flagged"] == 1
    table = markdown(rows)
    assert table.count("\n") == 4 and "| a | 2 | 0.850 ± 0.050 |" in table


@pytest.mark.slow
def test_quick_validation_runs_and_resumes(tmp_path, capsys) -> None:
    out = tmp_path / "validate"
    args = ["vae-validate", "--quick", "--variants", "embedded", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "validation.json").read_text())
    record = summary["records"]["embedded-s0"]
    assert 0.0 <= record["vae_auc"] <= 1.0 and record["pca_late"] is not None and record["permutation_p"] is not None
    assert record["univariate"]["modality_recall"] >= 0.5
    assert "| embedded | 1 |" in (out / "validation.md").read_text()
    capsys.readouterr()
    assert main(args) == 0
    assert "embedded-s0: done earlier" in capsys.readouterr().out
