"""Collaborative cross-entropy (Eqs. 11-12) against hand computations in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion.losses import CollaborativeCrossEntropy, collaborative_cross_entropy
from fusion.losses.collaborative import collaborative_cross_entropy_eq11


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _eq12_numpy(logits: np.ndarray, y: np.ndarray) -> float:
    """Eq. 12 sample by sample, with explicit loops (independent of the vectorised code)."""
    b, m, c = logits.shape
    total = 0.0
    for n in range(b):
        h = [_softmax(logits[n, i]) for i in range(m)]
        fit = -sum(np.log(h[i][y[n]]) for i in range(m)) / m
        pair = 0.0
        for i in range(m):
            for j in range(m):
                if i != j:
                    pair -= sum(h[i][k] * np.log(h[j][k]) for k in range(c))
        total += fit + (pair / (m * (m - 1)) if m > 1 else 0.0)
    return total / b


def test_two_by_two_hand_computation():
    # view 1: logits (0, 0) -> h = (0.5, 0.5); view 2: logits (0, ln 3) -> h = (0.25, 0.75); label 1
    logits = torch.tensor([[[0.0, 0.0], [0.0, float(np.log(3.0))]]])
    y = torch.tensor([1])
    fit = -(np.log(0.5) + np.log(0.75)) / 2
    pair = -(0.5 * np.log(0.25) + 0.5 * np.log(0.75)) - (0.25 * np.log(0.5) + 0.75 * np.log(0.5))
    expected = fit + pair / 2
    assert collaborative_cross_entropy(logits, y).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.49041 + 0.76506, abs=1e-4)  # label term + pair term, by hand


@pytest.mark.parametrize("b, m, c", [(5, 2, 2), (4, 3, 3), (3, 4, 2), (2, 1, 3)])
def test_general_form_matches_loop_reference(b, m, c):
    rng = np.random.default_rng(b * 100 + m * 10 + c)
    logits = rng.normal(size=(b, m, c)) * 2
    y = rng.integers(0, c, size=b)
    got = collaborative_cross_entropy(torch.tensor(logits), torch.tensor(y)).item()
    assert got == pytest.approx(_eq12_numpy(logits, y), rel=1e-10)


def test_eq11_is_twice_eq12_for_two_views_two_classes():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(7, 2, 2)))
    y = torch.tensor(rng.integers(0, 2, size=7))
    eq11 = collaborative_cross_entropy_eq11(logits[:, 0], logits[:, 1], y)
    eq12 = collaborative_cross_entropy(logits, y)
    torch.testing.assert_close(eq11, 2 * eq12)


def test_single_view_is_cross_entropy_and_reductions():
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(6, 1, 3)))
    y = torch.tensor(rng.integers(0, 3, size=6))
    ce = torch.nn.functional.cross_entropy(logits[:, 0], y, reduction="none")
    torch.testing.assert_close(collaborative_cross_entropy(logits, y, reduction="none"), ce)
    torch.testing.assert_close(collaborative_cross_entropy(logits, y, reduction="sum"), ce.sum())
    torch.testing.assert_close(CollaborativeCrossEntropy()(logits, y), ce.mean())


def test_gradients_flow_through_both_sides_of_the_pair_term():
    logits = torch.tensor([[[0.3, -0.2], [1.0, 0.5]]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0])
    # pair term only: the label term is removed by comparing with pair_weight 0
    g_full = torch.autograd.grad(collaborative_cross_entropy(logits, y), logits)[0]
    g_fit = torch.autograd.grad(collaborative_cross_entropy(logits, y, pair_weight=0.0), logits)[0]
    g_pair = g_full - g_fit
    assert (g_pair[0, 0].abs() > 1e-6).all() and (g_pair[0, 1].abs() > 1e-6).all()
    # gradient of the pair term equals a finite-difference estimate on view 1's first logit
    eps = 1e-4
    def pair_value(l):
        return (collaborative_cross_entropy(l, y) - collaborative_cross_entropy(l, y, pair_weight=0.0)).item()
    plus, minus = logits.detach().clone(), logits.detach().clone()
    plus[0, 0, 0] += eps
    minus[0, 0, 0] -= eps
    assert g_pair[0, 0, 0].item() == pytest.approx((pair_value(plus) - pair_value(minus)) / (2 * eps), rel=1e-6)


def test_terms_are_the_label_and_pair_parts_of_eq12():
    rng = np.random.default_rng(3)
    logits = torch.tensor(rng.normal(size=(7, 2, 2)))
    y = torch.tensor(rng.integers(0, 2, size=7))
    terms = CollaborativeCrossEntropy(pair_weight=0.5).terms(logits, y)
    assert set(terms) == {"label_loss", "pair_loss"}
    # label term: mean over views of the ordinary cross-entropy with the label
    ce = np.mean([torch.nn.functional.cross_entropy(logits[:, i], y).item() for i in range(2)])
    assert terms["label_loss"].item() == pytest.approx(ce, rel=1e-9)
    # pair term: what the full loss adds to the label term (weights are not applied to the terms)
    full = _eq12_numpy(logits.numpy(), y.numpy())
    assert terms["pair_loss"].item() == pytest.approx(full - ce, rel=1e-9)
    weighted = CollaborativeCrossEntropy(pair_weight=0.5)(logits, y).item()
    assert weighted == pytest.approx(ce + 0.5 * (full - ce), rel=1e-9)
