"""Catalyst callbacks, one job each (fold splits, checkpoints, latent extraction, classification).

Configs name callbacks by their full path (``fusion_callbacks.folds.FoldSplitCallback``); nothing is
re-exported here so that adding a callback never means editing this file.
"""
