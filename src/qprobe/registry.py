"""One registry class for everything pluggable.

Each concept (degradations, backends, datasets, rewards, metrics, baselines)
owns one :class:`Registry`; modules register entries with a decorator and the
concept's package exposes ``create_x()`` / ``list_x()`` built on it::

    DEGRADATIONS = Registry("degradation")

    @DEGRADATIONS.register("gaussian_blur", family="blur")
    class GaussianBlur: ...

    DEGRADATIONS.create("gaussian_blur", sigma=2.0)
    DEGRADATIONS.list("*blur*")

Metadata (score range, needs-torch, ...) sits next to the entry's code, so
the core never branches on a name. Lookups of unknown names fail with a
"did you mean" suggestion.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from qprobe.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its metadata."""

    name: str
    obj: T
    metadata: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A name → factory mapping with metadata, glob listing and lazy modules.

    ``lazy_modules`` are imported on first lookup, so ``import qprobe`` stays
    cheap. Those modules must themselves be light: an entry that needs an
    optional dependency (torch, transformers) imports it inside its factory.
    """

    def __init__(self, kind: str, lazy_modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._lazy_modules = list(lazy_modules)
        self._loaded = False

    # -- registration -----------------------------------------------------
    def register(self, name: str, **metadata: Any) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` with ``metadata``."""

        def decorator(obj: T) -> T:
            self.add(name, obj, **metadata)
            return obj

        return decorator

    def add(self, name: str, obj: T, **metadata: Any) -> None:
        if name in self._entries and self._entries[name].obj is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, obj, dict(metadata))

    # -- lookup -------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._lazy_modules:
            importlib.import_module(module)

    def entry(self, name: str) -> Entry[T]:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{hint} (known: {known})"
            ) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def metadata(self, name: str) -> dict[str, Any]:
        return dict(self.entry(name).metadata)

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the registered factory (class or function) with the arguments."""
        factory = self.get(name)
        if not callable(factory):
            raise TypeError(f"{self.kind} {name!r} is not callable")
        return factory(*args, **kwargs)

    def list(self, pattern: str = "*", **where: Any) -> list[str]:
        """Sorted names matching a glob ``pattern`` and metadata equalities."""
        self._load()
        names = []
        for name, entry in self._entries.items():
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            if any(entry.metadata.get(k) != v for k, v in where.items()):
                continue
            names.append(name)
        return sorted(names)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
