"""Plugin manager and the registries that plugins fill: model families, op backends, extra ops, weight transforms,
pipeline tasks, quantizations."""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .errors import PluginError, ZooinferError

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

    def locate(self) -> None:
        """Checks that a lazy target's module can be found, without importing it (resolve() imports it)."""
        if not isinstance(self.target, str):
            return
        module_name = self.target.partition(":")[0]
        try:
            found = importlib.util.find_spec(module_name) is not None
        except (ImportError, ValueError):  # a missing parent package
            found = False
        if not found:
            raise PluginError(f"plugin {self.plugin!r} registered {self.name!r} as {self.target!r}, "
                              f"but no module {module_name!r} is installed")

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


def quantization_registry() -> Registry:
    """Every registered weight-only quantization (int8, int4, ... and any a plugin adds), keyed by name."""
    return _collect("zooinfer_register_quantizations", "quantization")


_DEVICE = re.compile(r"([a-z][a-z0-9_]*)(:\d+)?")


def device_type_of(device: str) -> str:
    """'npu:1' -> 'npu'. Any type, not only those torch knows yet: a PrivateUse1 runtime registers its type
    when the backend serving it is imported, which selection does."""
    if hasattr(device, "type") and hasattr(device, "index"):  # a torch.device
        return device.type
    match = _DEVICE.fullmatch(device) if isinstance(device, str) else None
    if match is None:
        raise ZooinferError(f"invalid device {device!r}: expected a device type and an optional index, like 'cuda:0'")
    return match.group(1)


def task_registry() -> Registry:
    """Every registered pipeline task, keyed by task name."""
    return _collect("zooinfer_register_tasks", "task")


def select_backend(name: str | None, device: str):
    """The backend class for a device. A named backend always wins (it must serve the device and be available);
    otherwise the available backend serving the device with the highest priority, and two of them at that
    priority are an error naming both, never a silent pick."""
    registry = backend_registry()
    device_type = device_type_of(device)
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
            candidates.append((entry.name, cls))
    if not candidates:
        raise PluginError(f"no available backend serves device {device!r}; registered: {', '.join(registry.names())}")
    top = max(cls.priority for _, cls in candidates)
    best = [name for name, cls in candidates if cls.priority == top]
    if len(best) > 1:
        raise PluginError(f"backends {', '.join(repr(n) for n in best)} serve device {device!r} at the same priority "
                          f"{top}: name one (--backend, LLM(backend=...)) or uninstall all but one")
    return dict(candidates)[best[0]]
