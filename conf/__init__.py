"""The Hydra configs of every pipeline, installed as ``fusion_conf`` (a package only so that
``pip install .`` ships them; ``fusion run NAME`` and ``fusion conf-dir`` find them here)."""
