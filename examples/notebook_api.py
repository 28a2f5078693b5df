"""The multimodal VAE pipeline with ``fusion`` alone: no Catalyst, no Hydra.

What a notebook user does: build a tiny synthetic cohort, prepare it, train a small
``MultimodalVAE`` with the ELBO in a plain PyTorch loop, embed every subject with the posterior
means, classify patients from controls with a linear SVM inside scikit-learn's cross-validation,
and rank the modalities by the SVM's weights. Runs in well under a minute on a CPU::

    python examples/notebook_api.py [--out FOLDER] [--epochs N]

For the real protocol (10 folds, validation split, early stopping, PCA baselines, reports) use
``fusion run vae`` or ``make vae``; this shows the pieces those are built from.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from fusion.data.dataset import PreparedVolumes
from fusion.data.prepare import prepare_cohort
from fusion.data.synthetic_volumes import make_vae_cohort
from fusion.evaluate.classifiers import LinearSVM
from fusion.evaluate.importance import modality_importance
from fusion.evaluate.latents import VAELatents
from fusion.losses.vae_elbo import elbo
from fusion.models import MultimodalVAE


def train_vae(volumes: np.ndarray, epochs: int, latent_dim: int = 8, seed: int = 0) -> MultimodalVAE:
    """Train a small VAE on every volume of ``volumes`` ``(n, M, X, Y, Z)``, one subject per batch."""
    torch.manual_seed(seed)
    model = MultimodalVAE(in_shape=volumes.shape[2:], channels=(8, 16), head_channels=(8,), latent_dim=latent_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.from_numpy(volumes).float()
    model.train()
    for epoch in range(epochs):
        total = 0.0
        for i in torch.randperm(len(data)).tolist():
            x = data[i].unsqueeze(1)  # the M volumes of one subject as a batch (M, 1, X, Y, Z)
            recon, mu, logvar = model(x)
            loss = elbo(recon, x, mu, logvar, beta=0.01)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        print(f"epoch {epoch + 1}: mean negative ELBO per volume {total / len(data):.1f}")
    return model.eval()


def main(out: Path, epochs: int = 3, n_subjects: int = 40) -> dict[str, float]:
    manifest = make_vae_cohort(out / "cohort", size="tiny", n_subjects=n_subjects, seed=0, progress=False)
    prepare_cohort(manifest, out / "prepared", progress=False)
    dataset = PreparedVolumes(out / "prepared", cache="ram")
    volumes = np.stack([dataset[i]["volumes"].numpy() for i in range(len(dataset))])
    labels = dataset.labels

    # The VAE is unsupervised and sees no labels, so training it once on all subjects leaks nothing
    # into the SVM's folds; the paper trains one per fold (``fusion run vae``) to keep test
    # subjects unseen by the encoder too.
    model = train_vae(volumes, epochs)
    pipeline = make_pipeline(VAELatents(model), LinearSVM(C=1.0))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    auc = cross_val_score(pipeline, volumes, labels, cv=folds, scoring="roc_auc")
    print(f"5-fold ROC-AUC of the linear SVM on the VAE latents: {auc.mean():.3f} +- {auc.std():.3f}")

    pipeline.fit(volumes, labels)
    importance = modality_importance(pipeline[-1].coef_, n_modalities=volumes.shape[1])
    top = np.argsort(importance)[::-1][:5]
    names = [f"ICN{m + 1}" if m < volumes.shape[1] - 1 else "sMRI GM" for m in top]
    print("most important modalities:", ", ".join(f"{n} ({importance[m]:.3f})" for n, m in zip(names, top)))
    return {"auc_mean": float(auc.mean()), "importance_sum": float(importance.sum())}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if args.out is None:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp), args.epochs)
    else:
        main(args.out, args.epochs)
