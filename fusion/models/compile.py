"""``torch.compile`` as a config switch, applied in place so checkpoints keep their keys.

``torch.compile(model)`` returns a wrapper whose ``state_dict`` keys gain an ``_orig_mod.`` prefix,
so its checkpoints no longer load into a plain model (latent extraction, analysis, ``fusion
sample``). ``nn.Module.compile`` compiles the module's ``__call__`` in place instead: the object,
its class, its parameters and its ``state_dict`` stay as they were, and DDP can wrap it as usual.
Only ``model(x)`` is compiled; ``model.encode`` / ``model.decode`` called directly run eagerly.

Compilation happens at the first call and again for every new input shape (unless ``dynamic``):
on a GPU it pays off over a training run; on a CPU the inductor backend needs a C++ compiler
and takes minutes even for a small model (about 90 s for the first forward and backward pass of
a 2-layer VAE measured on this project's 2-core test machine).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from fusion.errors import ConfigError

__all__ = ["COMPILE_KEYS", "compile_model", "compile_options", "is_compiled"]

#: Keys accepted in a compile mapping, with their defaults (the arguments of ``torch.compile``).
COMPILE_KEYS: dict[str, Any] = {
    "enabled": True,
    "backend": "inductor",  # or "aot_eager", "eager" (debugging), "cudagraphs", ...
    "mode": None,  # None | "default" | "reduce-overhead" | "max-autotune"
    "dynamic": None,  # None: decide from recompilations; True: shape-generic graphs
    "fullgraph": False,  # True: fail instead of falling back on graph breaks
}


def compile_options(settings: bool | Mapping[str, Any] | None, field: str = "compile") -> dict[str, Any] | None:
    """``torch.compile`` keyword arguments from a config value, or None when disabled.

    Args:
        settings: ``False`` / ``None`` (off), ``True`` (inductor, default mode), or a mapping with
            some of :data:`COMPILE_KEYS` (``enabled`` defaults to true).
        field: config field named in error messages, e.g. ``"stage.compile"``.

    Raises:
        ConfigError: for a value of another type, an unknown key, or an unknown backend.
    """
    if settings is None or settings is False:
        return None
    if settings is True:
        options = dict(COMPILE_KEYS)
    elif isinstance(settings, Mapping):
        unknown = sorted(set(settings) - set(COMPILE_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {[f'{field}.{k}' for k in unknown]}; expected some of {sorted(COMPILE_KEYS)}"
            )
        options = {**COMPILE_KEYS, **settings}
    else:
        raise ConfigError(f"{field} must be true, false or a mapping of {sorted(COMPILE_KEYS)}, got {settings!r}")
    if not isinstance(options["enabled"], bool):
        raise ConfigError(f"{field}.enabled must be true or false, got {options['enabled']!r}")
    if not options.pop("enabled"):
        return None
    backend = options["backend"]
    if isinstance(backend, str):
        import torch._dynamo  # slow import: only when compiling

        known = torch._dynamo.list_backends(exclude_tags=())
        if backend not in known:
            raise ConfigError(f"{field}.backend {backend!r} is not a torch.compile backend; known: {sorted(known)}")
    return options


def compile_model(model: nn.Module, settings: bool | Mapping[str, Any] | None, field: str = "compile") -> nn.Module:
    """Compile ``model`` in place (``nn.Module.compile``) when ``settings`` asks for it.

    Args:
        model: the module; left untouched when compilation is off.
        settings: see :func:`compile_options`.
        field: config field named in error messages.

    Returns:
        ``model`` itself (same object and ``state_dict`` keys either way).
    """
    options = compile_options(settings, field=field)
    if options is not None:
        model.compile(**options)
    return model


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model``'s ``__call__`` was compiled in place."""
    return getattr(model, "_compiled_call_impl", None) is not None

