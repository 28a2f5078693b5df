"""Catalyst runners driven by Hydra configs, installed as ``fusion_runners``.

Configs name runners by their full path (``fusion_runners.vae.VAERunner``); nothing is re-exported
here so that adding a runner never means editing this file, and importing this package changes
nothing in Catalyst: :class:`fusion_runners.base.ConfigRunner` applies its one patch
(:func:`fusion_runners.code_dump.install`) explicitly when a run is built.
"""
