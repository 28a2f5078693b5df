"""Catalyst runners driven by Hydra configs, installed as ``fusion_runners``.

Configs name runners by their full path (``fusion_runners.vae.VAERunner``); nothing is re-exported
here so that adding a runner never means editing this file, and importing this package changes
nothing in Catalyst: :class:`fusion_runners.base.ConfigRunner` applies its one patch
(:func:`fusion_runners.code_dump.install`) explicitly when a run is built.
"""

import os as _os

# `catalyst-dl run` loads `args.expdir` (this folder) by path under the folder's name, which for an
# installed package is `fusion_runners` itself, and gives it pathlib entries in `__path__`, which
# the import system skips: make them strings so that `fusion_runners.vae` and friends import.
__path__[:] = [_os.fspath(_p) for _p in __path__]  # noqa: F821 (defined for packages)
