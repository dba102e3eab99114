"""Style-transfer methods: one module each, one registry, one ``Stylizer`` interface."""

from stylecore.methods import adain, gatys, photoreal, rast, sanet  # noqa: F401  (registration)
from stylecore.methods.base import MethodParams, StyleCode, Stylizer
from stylecore.methods.registry import get_method, list_methods, register_method

__all__ = ["MethodParams", "StyleCode", "Stylizer", "get_method", "list_methods", "register_method"]
