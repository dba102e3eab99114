"""The one exception hierarchy of stylecore.

Every error a user can cause (a bad image, a missing weight file, an unknown method name, a bad
parameter) is a :class:`StyleCoreError`, whose message names the thing and the reason. The CLI
catches this one type and prints it; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class StyleCoreError(Exception):
    """Base class of every error stylecore raises on purpose."""


class ImageError(StyleCoreError):
    """An image could not be read or written. ``path`` and ``reason`` are kept for reports."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class WeightsError(StyleCoreError):
    """Weights are missing, corrupt, mismatched with their checksum, or have the wrong keys."""


class UnknownNameError(StyleCoreError, KeyError):
    """A name (method, weights, encoder) is not registered. The message lists the known names."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known) or '(none)'}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class ParameterError(StyleCoreError, ValueError):
    """A method parameter or control is out of range or not supported by the method."""


class MeshError(StyleCoreError):
    """A mesh (or its MTL/texture) could not be read or written. ``path`` and ``reason`` are kept."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
