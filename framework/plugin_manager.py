"""Plugin manager and the registries that plugins fill: model families, op backends, extra ops, weight transforms."""
from __future__ import annotations

import functools
import importlib
import os
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .errors import PluginError

ENTRY_POINT_GROUP = "zooinfer"


@dataclass
class Entry:
    name: str
    target: object  # a class, or "module:Class" resolved on first use
    plugin: str
    distribution: str | None
    version: str | None
    override: bool = False

    def resolve(self):
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            self.target = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:
            raise PluginError(f"plugin {self.plugin!r} registered {self.name!r} as {self.target!r}, "
                              f"which failed to load: {type(exc).__name__}: {exc}") from exc
        return self.target

    def as_dict(self):
        target = self.target if isinstance(self.target, str) else f"{self.target.__module__}:{self.target.__qualname__}"
        return {"name": self.name, "target": target, "plugin": self.plugin,
                "distribution": self.distribution, "version": self.version}


class Registry:
    """Names to classes (or functions, for a registry of functions). Each name has one owner unless a plugin passes
    override=True."""

    def __init__(self, kind: str, functions: bool = False):
        self.kind = kind
        self.functions = functions
        self._entries: dict[str, Entry] = {}
        self._overrides: dict[str, Entry] = {}
        self._owner = ("<direct>", None, None)

    def register(self, name: str, target, override: bool = False):
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {self._owner[0]!r} registered a {self.kind} with an invalid name {name!r}")
        module_name, _, attr = target.partition(":") if isinstance(target, str) else ("", "", "")
        direct = callable(target) and not isinstance(target, type) if self.functions else isinstance(target, type)
        if not (direct or (module_name and attr)):  # caught here, not later as a bare TypeError
            what = "a function or a 'module:function'" if self.functions else "a class or a 'module:Class'"
            raise PluginError(f"plugin {self._owner[0]!r} registered the {self.kind} {name!r} as {target!r}; "
                              f"expected {what} string")
        entry = Entry(name, target, *self._owner, override=override)
        table = self._overrides if override else self._entries
        if name in table:
            raise PluginError(f"{self.kind} {name!r} is registered by both plugin {table[name].plugin!r} and "
                              f"plugin {entry.plugin!r}; pass override=True to replace an existing one")
        table[name] = entry

    def _finish(self):
        for name, entry in self._overrides.items():
            self._entries[name] = entry
        self._overrides = {}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name):
        return name in self._entries

    def get(self, name: str):
        if name not in self._entries:
            raise PluginError(f"no plugin registers the {self.kind} {name!r}; registered: {', '.join(self.names()) or 'none'}")
        return self._entries[name].resolve()


def _strict() -> bool:
    return os.environ.get("ZOOINFER_STRICT_PLUGINS", "") not in ("", "0")


def _report(message: str, exc: Exception):
    if _strict():
        raise PluginError(message) from exc
    warnings.warn(message, RuntimeWarning, stacklevel=3)


@functools.lru_cache(maxsize=None)
def _load_entry_points() -> tuple[pluggy.PluginManager, dict]:
    """The process-wide plugin manager with every installed entry point loaded once, and each one's distribution."""
    pm = pluggy.PluginManager("zooinfer")
    dists = {}
    pm.add_hookspecs(hookspecs)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        where = f"{ep.name} ({dist.name} {dist.version})" if dist else ep.name
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:
            _report(f"zooinfer plugin {where} failed to load: {type(exc).__name__}: {exc}", exc)
            continue
        dists[ep.name] = (dist.name, dist.version) if dist else (None, None)
    return pm, dists


def get_plugin_manager() -> pluggy.PluginManager:
    """The plugin manager; tests and embedders may pm.register(...) extra plugins on it."""
    return _load_entry_points()[0]


def _collect(hook_name: str, kind: str, functions: bool = False) -> Registry:
    pm, dists = _load_entry_points()
    registry = Registry(kind, functions)
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        registry._owner = (impl.plugin_name, *dists.get(impl.plugin_name, (None, None)))
        try:
            impl.function(registry=registry)
        except PluginError as exc:
            if "registered by both" in str(exc):
                raise
            _report(str(exc), exc)
        except Exception as exc:
            _report(f"zooinfer plugin {impl.plugin_name!r} failed to register {kind}s: {type(exc).__name__}: {exc}", exc)
    registry._finish()
    return registry


def model_registry() -> Registry:
    """Every registered model family, keyed by Hugging Face model_type. Rebuilt on each call (it is cheap)."""
    return _collect("zooinfer_register_models", "model type")


def backend_registry() -> Registry:
    """Every registered op backend, keyed by backend name."""
    return _collect("zooinfer_register_backends", "backend")


def op_registry() -> Registry:
    """Ops added by plugins, each name -> its torch reference function."""
    return _collect("zooinfer_register_ops", "op", functions=True)


def weight_transform_registry() -> Registry:
    """Weight transforms by name (transpose, rows, ... and any a plugin adds)."""
    return _collect("zooinfer_register_weight_transforms", "weight transform", functions=True)


def select_backend(name: str | None, device: str):
    """The backend class for a device: the named one, else the highest-priority available one that serves it."""
    registry = backend_registry()
    device_type = device.split(":")[0]
    if name is not None:
        cls = registry.get(name)
        if device_type not in cls.device_types:
            raise PluginError(f"backend {name!r} does not serve device {device!r} (it serves {', '.join(cls.device_types)})")
        if not cls.is_available(device_type):
            raise PluginError(f"backend {name!r} is not available on this machine for device {device!r}")
        return cls
    candidates = []
    for entry in registry.entries():
        try:
            cls = entry.resolve()
        except PluginError as exc:
            _report(str(exc), exc)
            continue
        if device_type in cls.device_types and cls.is_available(device_type):
            candidates.append(cls)
    if not candidates:
        raise PluginError(f"no available backend serves device {device!r}; registered: {', '.join(registry.names())}")
    return max(candidates, key=lambda cls: cls.priority)
