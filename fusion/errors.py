"""Exceptions that carry a message a researcher can act on.

Every error about data names the subject, the file or the field and says what was expected.
"""


class FusionError(Exception):
    """Base class of the errors the framework raises on purpose."""


class InputError(FusionError, ValueError):
    """Bad input data: a manifest, a NIfTI, an FC matrix, a genotype file."""


class ConfigError(FusionError, ValueError):
    """A configuration value that cannot work (unknown key, impossible size)."""
