"""Shared pytest setup: headless plotting and deterministic, bounded CPU use."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)


@pytest.fixture(autouse=True)
def _seeded_torch() -> None:
    """Every test starts from the same torch/NumPy seeds."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    np.random.seed(0)
