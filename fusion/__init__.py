"""fusion: multimodal neuroimaging fusion (multimodal VAE fusion, gCAM-CCL).

The science lives here as plain PyTorch / NumPy / scikit-learn; Catalyst runners and callbacks
(`runners/`, `callbacks/`) and Hydra configs (`conf/`) are thin adapters around it.
"""

__version__ = "0.1.0"
