"""Group differences decoded from the VAE's latent space (the paper's Fig. 3) and map agreement.

The latent group centre of a modality is the mean latent of the subjects of one group. Decoding the
patient centre and the control centre and subtracting gives what the model has learned patients
differ by, per modality. Following the paper, each modality's difference is thresholded at the 99th
percentile of its absolute value, and the thresholded maps of the most important modalities are
summed into one map. The same recipe applied to the inputs (mean patient volume minus mean control
volume) gives the map to compare with; on a cohort with planted effects the decoded differences are
also scored against the planted effect map.

Conventions: labels are 1 = patient, 0 = control; every difference is patient minus control;
volumes are ``(..., X, Y, Z)`` arrays on the input grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from fusion.errors import InputError

__all__ = [
    "group_centres",
    "decode_latents",
    "decoded_group_difference",
    "input_group_difference",
    "data_mask",
    "percentile_threshold",
    "combine_maps",
    "top_modalities",
    "map_correlation",
    "dice",
    "map_dice",
    "compare_maps",
    "recovery_scores",
]


def _check_latents(mu: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    labels = np.asarray(labels)
    if mu.ndim != 3:
        raise InputError(f"mu must be (n_subjects, n_modalities, latent_dim), got shape {mu.shape}")
    if labels.ndim != 1 or labels.shape[0] != mu.shape[0]:
        raise InputError(
            f"labels must be (n_subjects,) = ({mu.shape[0]},) to match mu, got shape {labels.shape}"
        )
    if not np.all(np.isin(labels, (0, 1))):
        raise InputError(f"labels must be 0 (control) or 1 (patient), got values {np.unique(labels)[:5].tolist()}")
    for value, name in ((0, "control (0)"), (1, "patient (1)")):
        if not np.any(labels == value):
            raise InputError(f"labels hold no {name} subject: a group difference needs both groups")
    if not np.all(np.isfinite(mu)):
        raise InputError("mu holds NaN or inf values")
    return mu, labels.astype(np.int64)


def group_centres(mu: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latent group centres per modality.

    Args:
        mu: posterior means ``(n_subjects, n_modalities, latent_dim)``.
        labels: ``(n_subjects,)``, 1 = patient, 0 = control.

    Returns:
        ``(control_centre, patient_centre)``, each ``(n_modalities, latent_dim)``.
    """
    mu, labels = _check_latents(mu, labels)
    return mu[labels == 0].mean(axis=0), mu[labels == 1].mean(axis=0)


def decode_latents(
    model: Any, z: np.ndarray, batch_size: int = 8, device: str | None = None
) -> np.ndarray:
    """Decode latents to volumes with a model's ``decode`` (no gradients, model left in eval mode).

    Args:
        model: a ``MultimodalVAE`` (anything with ``decode(z (B, l)) -> (B, 1, X, Y, Z)``).
        z: latents ``(n, latent_dim)``.
        batch_size: latents decoded at once (bounds memory at full size).
        device: torch device to decode on; default: the model's device.

    Returns:
        ``(n, X, Y, Z)`` float32 volumes.
    """
    import torch

    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2:
        raise InputError(f"z must be (n, latent_dim), got shape {z.shape}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if device is None:
        params = list(model.parameters())
        device = params[0].device if params else "cpu"
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, z.shape[0], batch_size):
            zb = torch.from_numpy(z[start : start + batch_size]).to(device)
            vol = model.decode(zb)
            out.append(vol.reshape(vol.shape[0], *vol.shape[2:]).float().cpu().numpy())
    return np.concatenate(out, axis=0)


def decoded_group_difference(
    model: Any,
    mu: np.ndarray,
    labels: np.ndarray,
    modalities: Sequence[int] | None = None,
    batch_size: int = 8,
    device: str | None = None,
) -> np.ndarray:
    """``decode(patient centre) - decode(control centre)`` per modality.

    Args:
        model: the trained VAE (see :func:`decode_latents`).
        mu: posterior means ``(n_subjects, n_modalities, latent_dim)``.
        labels: ``(n_subjects,)``, 1 = patient, 0 = control.
        modalities: modality indices to decode (default: all), in the order wanted.
        batch_size: latents decoded at once.
        device: torch device (default: the model's).

    Returns:
        ``(len(modalities), X, Y, Z)`` float32 differences, patient minus control.
    """
    control, patient = group_centres(mu, labels)
    idx = _modality_indices(modalities, control.shape[0])
    decoded = decode_latents(
        model, np.concatenate([patient[idx], control[idx]], axis=0), batch_size=batch_size, device=device
    )
    return decoded[: len(idx)] - decoded[len(idx) :]


def _modality_indices(modalities: Sequence[int] | None, n_modalities: int) -> np.ndarray:
    if modalities is None:
        return np.arange(n_modalities)
    idx = np.asarray(modalities, dtype=np.int64).reshape(-1)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n_modalities:
        raise InputError(f"modalities must be indices in 0..{n_modalities - 1}, got {idx.tolist()}")
    return idx


def input_group_difference(
    volumes: Iterable[Any],
    labels: Sequence[int] | None = None,
    modalities: Sequence[int] | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Voxelwise mean patient volume minus mean control volume, accumulated one subject at a time.

    Args:
        volumes: per subject, either an array ``(n_modalities, X, Y, Z)`` (then ``labels`` gives the
            groups) or a ``PreparedVolumes`` item ``{"volumes": (n_modalities, X, Y, Z), "label": int}``.
        labels: ``(n_subjects,)`` 1 = patient, 0 = control; needed when ``volumes`` yields arrays.
        modalities: modality indices to keep (default: all), in the order wanted.
        progress: show a progress bar.

    Returns:
        ``(difference, intensity)``: ``difference`` is ``(len(modalities), X, Y, Z)`` float32;
        ``intensity`` is the ``(X, Y, Z)`` mean absolute input over subjects and all modalities,
        from which :func:`data_mask` derives the brain mask the data carries.
    """
    sums: list[np.ndarray | None] = [None, None]
    counts = [0, 0]
    intensity: np.ndarray | None = None
    iterator: Iterable[Any] = volumes
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(volumes, desc="input group means", unit="subject")
    label_list = None if labels is None else list(np.asarray(labels).reshape(-1))
    n_from_labels = 0
    for i, item in enumerate(iterator):
        if isinstance(item, dict):
            vol, label = item["volumes"], int(item["label"])
        else:
            n_from_labels += 1
            if label_list is None:
                raise InputError("input_group_difference: labels are required when volumes yields arrays")
            if i >= len(label_list):
                raise InputError(f"input_group_difference: more volumes than labels ({len(label_list)})")
            vol, label = item, int(label_list[i])
        vol = vol.numpy() if hasattr(vol, "numpy") else np.asarray(vol)
        if vol.ndim != 4:
            raise InputError(f"subject {i}: volumes must be (n_modalities, X, Y, Z), got shape {vol.shape}")
        if label not in (0, 1):
            raise InputError(f"subject {i}: label must be 0 (control) or 1 (patient), got {label}")
        idx = _modality_indices(modalities, vol.shape[0])
        mag = np.abs(vol).astype(np.float64).mean(axis=0)
        intensity = mag if intensity is None else intensity + mag
        sel = vol[idx].astype(np.float64)
        sums[label] = sel if sums[label] is None else sums[label] + sel
        counts[label] += 1
    if n_from_labels and label_list is not None and n_from_labels != len(label_list):
        raise InputError(f"input_group_difference: {n_from_labels} volumes but {len(label_list)} labels")
    for value, name in ((0, "control (0)"), (1, "patient (1)")):
        if counts[value] == 0:
            raise InputError(f"input_group_difference: no {name} subject among the volumes")
    control, patient = sums
    assert control is not None and patient is not None and intensity is not None  # both groups seen above
    diff = patient / counts[1] - control / counts[0]
    return diff.astype(np.float32), (intensity / (counts[0] + counts[1])).astype(np.float32)


def data_mask(intensity: np.ndarray, fraction: float = 1e-3) -> np.ndarray:
    """Brain mask of the data: voxels whose mean absolute input exceeds ``fraction`` of its maximum.

    Masked data (exact zeros outside the brain) gives its mask for any small ``fraction``; data
    resampled or smoothed after masking leaves values orders of magnitude below the brain's, which
    the fraction cuts off.

    Args:
        intensity: ``(X, Y, Z)`` mean absolute input (see :func:`input_group_difference`).
        fraction: relative threshold in [0, 1).
    """
    intensity = np.asarray(intensity, dtype=np.float64)
    if not 0 <= fraction < 1:
        raise InputError(f"mask fraction must be in [0, 1), got {fraction}")
    peak = intensity.max() if intensity.size else 0.0
    if not peak > 0:
        raise InputError("the input volumes are all zero: no brain mask can be derived")
    return intensity > fraction * peak


def _check_mask(mask: Any, spatial: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != spatial:
        raise InputError(f"mask must have the maps' spatial shape {spatial}, got {mask.shape}")
    if not mask.any():
        raise InputError("mask selects no voxel")
    return mask


def percentile_threshold(
    maps: np.ndarray, q: float = 99.0, mask: np.ndarray | None = None
) -> np.ndarray:
    """Keep, per map, the voxels whose absolute value reaches the ``q``-th percentile; zero the rest.

    The percentile is taken over the voxels in ``mask`` (all voxels when None); voxels outside the
    mask and exact zeros are never kept, so a map that is zero on more than ``100 - q`` % of the
    voxels keeps only its non-zero voxels.

    Args:
        maps: ``(X, Y, Z)`` or ``(n, X, Y, Z)`` maps.
        q: percentile in [0, 100]; 99 keeps about 1 % of the voxels (the paper's choice).
        mask: optional ``(X, Y, Z)`` boolean mask of voxels to consider.

    Returns:
        Array of ``maps``' shape and dtype with the sub-threshold voxels set to 0 (signs kept).
    """
    maps = np.asarray(maps)
    if not 0 <= q <= 100:
        raise InputError(f"q must be a percentile in [0, 100], got {q}")
    single = maps.ndim == 3
    stack = maps[None] if single else maps
    if stack.ndim != 4:
        raise InputError(f"maps must be (X, Y, Z) or (n, X, Y, Z), got shape {maps.shape}")
    mask = _check_mask(mask, stack.shape[1:])
    out = np.zeros_like(stack)
    for i, m in enumerate(stack):
        mag = np.abs(m)
        values = mag[mask] if mask is not None else mag.ravel()
        thr = np.percentile(values, q)
        keep = (mag >= thr) & (mag > 0)
        if mask is not None:
            keep &= mask
        out[i][keep] = m[keep]
    return out[0] if single else out


def combine_maps(maps: np.ndarray, modalities: Sequence[int] | None = None) -> np.ndarray:
    """Sum maps over modalities.

    Args:
        maps: ``(n_modalities, X, Y, Z)``.
        modalities: indices into the first axis to sum (default: all).

    Returns:
        ``(X, Y, Z)`` sum.
    """
    maps = np.asarray(maps)
    if maps.ndim != 4:
        raise InputError(f"maps must be (n_modalities, X, Y, Z), got shape {maps.shape}")
    return maps[_modality_indices(modalities, maps.shape[0])].sum(axis=0)


def top_modalities(importance: np.ndarray, k: int = 5) -> np.ndarray:
    """Indices of the ``k`` largest importances, most important first (ties: lower index first).

    Args:
        importance: ``(n_modalities,)`` importances.
        k: how many to return (capped by ``n_modalities``).
    """
    imp = np.asarray(importance, dtype=np.float64)
    if imp.ndim != 1 or imp.size == 0 or not np.all(np.isfinite(imp)):
        raise InputError(f"importance must be a finite 1D array, got shape {imp.shape}")
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    return np.argsort(-imp, kind="stable")[: min(k, imp.size)]


def map_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of two maps over the voxels of ``mask`` (all voxels when None).

    Returns NaN when either map is constant over those voxels (no correlation is defined).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"maps must have the same shape, got {a.shape} and {b.shape}")
    mask = _check_mask(mask, a.shape)
    x, y = (a[mask], b[mask]) if mask is not None else (a.ravel(), b.ravel())
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap ``2 |A & B| / (|A| + |B|)`` of two boolean masks (NaN when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise InputError(f"masks must have the same shape, got {a.shape} and {b.shape}")
    total = int(a.sum()) + int(b.sum())
    return float(2.0 * np.logical_and(a, b).sum() / total) if total else float("nan")


def map_dice(
    a: np.ndarray, b: np.ndarray, q: float = 99.0, mask: np.ndarray | None = None
) -> float:
    """Dice overlap of the supra-threshold voxels of two maps, each thresholded at its own ``q``-th
    percentile of absolute value (see :func:`percentile_threshold`)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise InputError(f"maps must have the same shape, got {a.shape} and {b.shape}")
    return dice(percentile_threshold(a, q, mask) != 0, percentile_threshold(b, q, mask) != 0)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def compare_maps(
    decoded: np.ndarray,
    inputs: np.ndarray,
    q: float = 99.0,
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """Agreement of a decoded difference map with the inputs' difference map.

    Args:
        decoded: ``(n, X, Y, Z)`` decoded differences of the selected modalities.
        inputs: ``(n, X, Y, Z)`` input differences of the same modalities, same order.
        q: threshold percentile per modality.
        mask: optional brain mask ``(X, Y, Z)``.

    Returns:
        ``correlation``: Pearson r of the summed unthresholded maps; ``correlation_thresholded``: of
        the summed thresholded maps (the figures' maps); ``dice``: overlap of the voxels kept in any
        modality of either map; ``correlation_per_modality`` / ``dice_per_modality``: lists, one per
        modality. Undefined values are None.
    """
    decoded, inputs = np.asarray(decoded), np.asarray(inputs)
    if decoded.shape != inputs.shape or decoded.ndim != 4:
        raise InputError(
            f"decoded and inputs must both be (n, X, Y, Z) with the same shape, got {decoded.shape} "
            f"and {inputs.shape}"
        )
    td, ti = percentile_threshold(decoded, q, mask), percentile_threshold(inputs, q, mask)
    return {
        "correlation": _finite_or_none(map_correlation(decoded.sum(0), inputs.sum(0), mask)),
        "correlation_thresholded": _finite_or_none(map_correlation(td.sum(0), ti.sum(0), mask)),
        "dice": _finite_or_none(dice((td != 0).any(0), (ti != 0).any(0))),
        "correlation_per_modality": [
            _finite_or_none(map_correlation(d, i, mask)) for d, i in zip(decoded, inputs)
        ],
        "dice_per_modality": [_finite_or_none(dice(d != 0, i != 0)) for d, i in zip(td, ti)],
    }


def recovery_scores(
    decoded: np.ndarray,
    planted: np.ndarray,
    modalities: Sequence[int],
    q: float = 99.0,
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """Score decoded group differences against a planted patient-minus-control effect.

    Scored per planted modality, then averaged: summing modalities first would let a well-recovered
    large effect hide a missed small one, and would mix effects of different signs.

    Args:
        decoded: ``(n_modalities, X, Y, Z)`` decoded differences of every modality.
        planted: ``(n_modalities, X, Y, Z)`` planted differences (zero where nothing is planted).
        modalities: the planted modality indices to score.
        q: threshold percentile (both maps, each at its own percentile) for the Dice overlap.
        mask: optional brain mask ``(X, Y, Z)``.

    Returns:
        ``map_correlation``: mean over planted modalities of the Pearson r of the decoded and planted
        maps (unthresholded, within the mask); ``map_dice``: mean Dice of their supra-threshold voxels;
        ``per_modality``: ``{index: {"correlation", "dice"}}``; ``modalities``, ``threshold_percentile``.
        Means skip undefined values; a mean over nothing is None.
    """
    decoded, planted = np.asarray(decoded), np.asarray(planted)
    if decoded.shape != planted.shape or decoded.ndim != 4:
        raise InputError(
            f"decoded and planted must both be (n_modalities, X, Y, Z) with the same shape, got "
            f"{decoded.shape} and {planted.shape}"
        )
    idx = _modality_indices(modalities, decoded.shape[0])
    per: dict[str, dict[str, float | None]] = {}
    for m in idx:
        if not np.any(planted[m] != 0):
            raise InputError(f"modality {int(m)} is listed as planted but its planted effect map is all zero")
        per[str(int(m))] = {
            "correlation": _finite_or_none(map_correlation(decoded[m], planted[m], mask)),
            "dice": _finite_or_none(map_dice(decoded[m], planted[m], q, mask)),
        }

    def _mean(key: str) -> float | None:
        vals = [x for v in per.values() if (x := v[key]) is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "map_correlation": _mean("correlation"),
        "map_dice": _mean("dice"),
        "per_modality": per,
        "modalities": [int(m) for m in idx],
        "threshold_percentile": float(q),
    }
