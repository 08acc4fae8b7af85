"""Registries by name, so a new component is a new file with a decorator, not a loop edit.

    from conlearn.core.registry import EXPLORERS

    @EXPLORERS.register("lammps-md")
    class LammpsExplorer: ...

    explorer = EXPLORERS.build("lammps-md", temperature=300)
    WORKFLOWS.register_lazy("rid", "conlearn.rid.workflow:WORKFLOW")   # imported when used

A name is found, in order: among the registered names; as ``"package.module:attr"``
(imported on demand); among the entry points of group ``conlearn.<kind>s`` of installed
distributions (so third-party plugins need no import in our code).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown name; the message lists the names that are known."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Name -> factory (a class or a function returning a component) for one kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._discovered = False
        self._broken: dict[str, str] = {}
        self._lazy: dict[str, str] = {}

    def register(self, name: str, obj: T | None = None, *, replace: bool = False) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj`` return a decorator."""

        def add(item: T) -> T:
            old = self._items.get(name)
            if old is not None and old is not item and not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered ({old!r}); pass replace=True")
            self._items[name] = item
            return item

        return add(obj) if obj is not None else add

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``name`` as ``"package.module:attr"``, imported on first :meth:`get`
        (a domain's heavy imports, torch or OpenMM, are paid only when it is used)."""
        if ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: lazy target must be 'package.module:attr', got {target!r}")
        self._lazy[name] = target

    def names(self) -> list[str]:
        self._discover()
        return sorted(set(self._items) | set(self._lazy))

    def __contains__(self, name: str) -> bool:
        return name in self._items or (":" not in name and name in self.names())

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        if name in self._lazy:
            module, _, attr = self._lazy[name].partition(":")
            try:
                self._items[name] = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as err:
                raise RegistryError(f"{self.kind} {name!r} ({self._lazy[name]}) failed to load: "
                                    f"{type(err).__name__}: {err}") from None
            return self._items[name]
        if ":" in name:
            module, _, attr = name.partition(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as err:
                raise RegistryError(f"{self.kind} {name!r} cannot be imported: {err}") from None
        self._discover()
        if name in self._items:
            return self._items[name]
        if name in self._broken:
            raise RegistryError(f"{self.kind} {name!r} is installed but failed to load: {self._broken[name]}")
        raise RegistryError(f"unknown {self.kind} {name!r}; known: {self.names()} "
                            f"(or give 'package.module:attr')")

    def build(self, name: str, /, **params: Any) -> Any:
        """Call the factory registered as ``name`` with ``params``."""
        factory = self.get(name)
        try:
            return factory(**params)  # type: ignore[operator]
        except TypeError as err:
            raise TypeError(f"{self.kind} {name!r}: {err}") from None

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for ep in entry_points(group=f"conlearn.{self.kind}s"):
            if ep.name not in self._items:
                try:
                    self._items[ep.name] = ep.load()
                except Exception as err:  # a broken plugin must not hide the others
                    self._broken[ep.name] = f"{type(err).__name__}: {err}"

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._items)})"


TRAINERS: Registry = Registry("trainer")
EXPLORERS: Registry = Registry("explorer")
SELECTORS: Registry = Registry("selector")
LABELERS: Registry = Registry("labeler")
WORKFLOWS: Registry = Registry("workflow")  # whole runs behind `conlearn run` (see protocols.Workflow)
