"""The one registry of methods: ``register_method`` adds a class, ``get_method`` finds it by name."""

from __future__ import annotations

from typing import TypeVar

from stylecore.errors import UnknownNameError
from stylecore.methods.base import Stylizer

_METHODS: dict[str, type[Stylizer]] = {}
T = TypeVar("T", bound=type[Stylizer])


def register_method(cls: T) -> T:
    """Class decorator; refuses a second class under the same name."""
    name = cls.name
    if name in _METHODS and _METHODS[name] is not cls:
        raise ValueError(f"method {name!r} is already registered by {_METHODS[name].__qualname__}")
    _METHODS[name] = cls
    return cls


def get_method(name: str) -> type[Stylizer]:
    if name not in _METHODS:
        raise UnknownNameError("method", name, _METHODS)
    return _METHODS[name]


def list_methods() -> list[str]:
    return sorted(_METHODS)
