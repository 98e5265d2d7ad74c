"""Segmentation methods, one module each, and their registry.

A method (:class:`~bigseg.methods.base.Method`) declares its global statistic, the pixel
sizes its kernel sees, its plane (or block) kernel, its halo, an optional pre-pass and
its linking options; :func:`bigseg.segment`, :func:`bigseg.global_threshold`,
:func:`bigseg.link` and :func:`bigseg.run` look it up here by ``Params.preset``.  A new
method is one module and one :func:`register` line.
"""

from __future__ import annotations

from .. import params as _params
from .._errors import InputError
from . import default, seed
from .base import Method

__all__ = ["Method", "get", "names", "register"]

_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make ``method`` available by its name (also a ``Params`` preset); returns it."""
    _REGISTRY[method.name] = method
    _params.add_preset(method.name, **dict(method.preset))
    return method


def get(name: str) -> Method:
    """Return the method registered as ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(
            f"Unknown method {name!r}; choose one of {', '.join(sorted(_REGISTRY))}."
        ) from None


def names() -> tuple[str, ...]:
    """Return the names of the registered methods."""
    return tuple(_REGISTRY)


register(default.METHOD)
register(seed.METHOD)
