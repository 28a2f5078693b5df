"""Catalyst runners driven by Hydra configs.

Configs name runners by their full path (``runners.vae.VAERunner``); nothing is re-exported here
so that adding a runner never means editing this file.
"""
