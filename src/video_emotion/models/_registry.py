"""The model registry: builders register by name, ``create_model`` looks them up (as timm's ``_registry``)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn(num_classes, **kw) -> nn.Module`` under its function name."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_MODELS)


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with ``num_classes`` outputs; ``kwargs`` override its defaults."""
    try:
        builder = _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(list_models())}") from None
    return builder(num_classes, **kwargs)
