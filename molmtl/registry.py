"""``Registry``: the one way a name picks an implementation in molmtl.

Featurizers, encoders, balancing methods, splits and QM9 readers each have one registry. An
entry is a class or function, or a ``"module:attribute"`` string imported on first use, so a
registry can list its names (for config validation and ``--help``) without importing torch.

>>> SPLITS = Registry("split")
>>> @SPLITS.register("random")
... def random_split(n, fractions, seed): ...
>>> SPLITS.names()
['random']
>>> SPLITS.get("random") is random_split
True

This module imports nothing else of molmtl; every layer may use it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names → implementations of one family (e.g. ``"encoder"``).

    Args:
        family: what the entries are, for error messages (``"unknown encoder 'x'"``).
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, target: T | str | None = None) -> Any:
        """Add ``target`` under ``name``; without ``target``, a decorator that adds what it wraps.

        ``target`` may be ``"package.module:attribute"``, imported when first asked for.
        """
        if target is not None:
            self._add(name, target)
            return target

        def add(entry: T) -> T:
            self._add(name, entry)
            return entry

        return add

    def _add(self, name: str, target: T | str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.family} {name!r} is registered twice")
        self._entries[name] = target

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def get(self, name: str) -> T:
        """The implementation registered as ``name`` (imported now if registered lazily).

        Raises:
            ValueError: ``name`` is not registered; the message lists the names that are.
        """
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"unknown {self.family} {name!r}; available: {self.names()}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = getattr(import_module(module), attribute)
            self._entries[name] = entry
        return entry

    def options(self, name: str, skip: Iterable[str] = ()) -> dict[str, Any]:
        """Keyword options of ``name``'s constructor (or signature) with their defaults."""
        target = self.get(name)
        signature = inspect.signature(target.__init__ if inspect.isclass(target) else target)
        return {
            key: parameter.default
            for key, parameter in signature.parameters.items()
            if key not in {"self", *skip}
            and parameter.kind
            not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }

    def check_options(self, name: str, given: Iterable[str], valid: Iterable[str]) -> None:
        """Raise ``ValueError`` naming any of ``given`` that is not in ``valid``."""
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for {self.family} {name!r}; "
                f"valid options: {sorted(valid)}"
            )

    def build(self, name: str, *args: Any, skip: Iterable[str] = (), **options: Any) -> Any:
        """``get(name)(*args, **options)`` after checking ``options`` against its signature.

        Args:
            skip: constructor parameters the caller passes positionally or fills itself.
        """
        target: Callable[..., Any] = self.get(name)  # type: ignore[assignment]
        self.check_options(name, options, self.options(name, skip))
        return target(*args, **options)
