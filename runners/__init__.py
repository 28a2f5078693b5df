"""Catalyst runners driven by Hydra configs.

Configs name runners by their full path (``runners.vae.VAERunner``); nothing is re-exported here
so that adding a runner never means editing this file.
"""

import os as _os

# `catalyst-dl run` imports `args.expdir` (this folder) by path and registers it as `runners`
# with pathlib entries in `__path__`, which the import system skips; make them strings so that
# `runners.vae` and friends stay importable.
__path__[:] = [_os.fspath(_p) for _p in __path__]  # noqa: F821

from runners.code_dump import install as _install_code_dump  # noqa: E402

_install_code_dump()  # fold jobs sharing a logdir dump the code without racing (see runners.code_dump)
