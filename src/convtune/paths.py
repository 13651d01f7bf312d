"""Where things are on this machine: the data root, the cache root, installed packages' folders."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path


def data_root() -> Path:
    """Where built-in sets are read from."""
    return Path(os.environ.get("CONVTUNE_DATA", "../shared/data"))


def module_dir(module: str) -> Path | None:
    """A package's folder without importing it (some fail to import without their extras)."""
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(list(found.submodule_search_locations)[0])


def default_cache_root() -> Path:
    """``$CONVTUNE_CACHE``, else ``$XDG_CACHE_HOME/convtune``, else ``~/.cache/convtune``."""
    if os.environ.get("CONVTUNE_CACHE"):
        return Path(os.environ["CONVTUNE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convtune"
