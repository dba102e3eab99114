"""The one exception hierarchy of stylecore.

Every error a user can cause (a bad image, a missing weight file, an unknown method name, a bad
parameter) is a :class:`StyleCoreError`, whose message names the thing and the reason. The CLI
catches this one type and prints it; anything else is a bug and keeps its traceback.

Messages speak of the library's own settings (``weights``, ``size``, ``init_from``), never of a front
end's options: an error that names settings keeps them as ``{setting}`` placeholders in
``template``, and a front end writes them its own way with :meth:`StyleCoreError.render` (the CLI's
``--weights``, ``--set upsample``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path


class StyleCoreError(Exception):
    """Base class of every error stylecore raises on purpose.

    ``settings`` lists the settings a message names as ``{name}`` placeholders, or maps each to how
    the library writes it (by default its name); ``str()`` is the library's wording.
    """

    def __init__(self, message: str = "", *, settings: Iterable[str] | Mapping[str, str] = ()) -> None:
        self.template = message
        self.settings = dict(settings) if isinstance(settings, Mapping) else {s: s for s in settings}
        super().__init__(self.render(self.settings.__getitem__) if self.settings else message)

    def render(self, write: Callable[[str], str]) -> str:
        """The message with each named setting written as ``write(name)`` (a front end's own name)."""
        if not self.settings:
            return str(self)
        return re.sub(r"\{(\w+)\}", lambda m: write(m[1]) if m[1] in self.settings else m[0], self.template)


class ImageError(StyleCoreError):
    """An image could not be read or written. ``path`` and ``reason`` are kept for reports."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class WeightsError(StyleCoreError):
    """Weights are missing, corrupt, mismatched with their checksum, or have the wrong keys."""


class WeightsNotImportedError(WeightsError):
    """Weights that cannot be downloaded and were not imported yet: ``name`` and ``role`` (None for a
    one-file entry) say which file to import; the message's ``{import}`` is how."""

    def __init__(self, name: str, role: str | None) -> None:
        self.name, self.role = name, role
        how = f"stylecore.models.import_weights(catalog, {name!r}, PATH{f', role={role!r}' if role else ''})"
        super().__init__(
            f"weights {name!r} are not installed: they cannot be downloaded here; import the file you "
            "have with {import}",
            settings={"import": how},
        )


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
