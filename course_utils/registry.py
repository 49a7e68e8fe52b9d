"""A dictionary filled by the modules of one package as they are imported (checks, hidden tests)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


class Registry(dict):
    """Entries registered by the submodules of ``package``; :meth:`load` imports them all once."""

    def __init__(self, package: str, path: Iterable[str], kind: str) -> None:
        super().__init__()
        self.package, self.path, self.kind = package, list(path), kind

    def add(self, key: str, value) -> None:
        """Register ``value`` under ``key``; a key registered twice is a mistake."""
        if key in self:
            raise ValueError(f"{self.kind} {key!r} is registered twice")
        self[key] = value

    def load(self) -> Registry:
        """Import every submodule of the package (each registers its entries); return self."""
        for module in pkgutil.iter_modules(self.path):
            importlib.import_module(f"{self.package}.{module.name}")
        return self
