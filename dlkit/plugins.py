"""Plugins: modules under the project's plugins/ folder and installed `dlkit.plugins` entry points.

Discovery is cheap and imports nothing, so `dlkit --help` can list a plugin's YAML options; a
plugin's code is imported (and registers its components) only when a run or `dlkit list` needs it.
A plugin package may ship a `conf/` folder of YAML options, laid out like dlkit's own `conf/`.
Set DLKIT_PLUGINS=0 to switch all plugins off.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from dlkit import environment, registry
from dlkit.tracking import tags

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dlkit.plugins"
FOLDER = "plugins"
LOCAL_PACKAGE = "dlkit_local_plugins"  # the plugins/ folder is imported as this package


@dataclass
class Plugin:
    name: str
    origin: str  # where it comes from, as `dlkit list` and the run's tags show it
    module: str
    attr: str | None = None  # an entry point's `module:function`, called after import
    conf_dir: Path | None = None
    error: str | None = None
    loaded: bool = False

    def load(self) -> None:
        if self.loaded or self.error:
            return
        try:
            with registry.source(self.origin):
                module = importlib.import_module(self.module)
                if self.attr:
                    getattr(module, self.attr)()
            self.loaded = True
        except Exception as exc:  # a broken plugin must not break runs that do not use it
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "dlkit: plugin '%s' (%s) failed to import and is skipped: %s", self.name, self.origin, self.error
            )


_discovered: list[Plugin] | None = None
_switch: bool | None = None  # set by dlkit.run(plugins=...); None follows DLKIT_PLUGINS


def enabled() -> bool:
    if _switch is not None:
        return _switch
    return os.environ.get(environment.PLUGINS, "1").strip().lower() not in {"0", "off", "false", "no"}


def discover(project_dir: Path | None = None) -> list[Plugin]:
    """Every plugin of the project folder and of the installed distributions, not yet imported."""
    global _discovered
    if _discovered is None:
        _discovered = (
            _folder_plugins(Path(project_dir or Path.cwd()) / FOLDER) + _entry_point_plugins() if enabled() else []
        )
    return _discovered


def load_all() -> list[Plugin]:
    plugins = discover()
    for plugin in plugins:
        plugin.load()
    return [p for p in plugins if p.loaded]


def labels(discovered: bool = False) -> list[str]:
    """How plugins are named in a run's tags: those loaded, or (discovered=True) every one found that has not failed."""
    return [tags.plugin_label(p.name, p.origin) for p in discover() if (discovered and not p.error) or p.loaded]


def reset(switch: bool | None = None) -> None:
    """Forget what was discovered; switch=False turns plugins off, None follows DLKIT_PLUGINS."""
    global _discovered, _switch
    _discovered, _switch = None, switch


def failure_hint() -> str:
    failed = [p for p in discover() if p.error]
    return "".join(f" Note: plugin '{p.name}' ({p.origin}) failed to import: {p.error}" for p in failed)


registry.unknown_name_hints.append(failure_hint)


def _folder_plugins(folder: Path) -> list[Plugin]:
    if not folder.is_dir():
        return []
    package = types.ModuleType(LOCAL_PACKAGE)
    package.__path__ = [str(folder.resolve())]
    sys.modules.setdefault(LOCAL_PACKAGE, package)
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if path.suffix == ".py":
            found.append(Plugin(path.stem, f"{FOLDER}/{path.name}", f"{LOCAL_PACKAGE}.{path.stem}"))
        elif (path / "__init__.py").is_file():
            conf = path / "conf"
            found.append(
                Plugin(
                    path.name,
                    f"{FOLDER}/{path.name}",
                    f"{LOCAL_PACKAGE}.{path.name}",
                    conf_dir=conf if conf.is_dir() else None,
                )
            )
    return found


def _entry_point_plugins() -> list[Plugin]:
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
        module, _, attr = ep.value.partition(":")
        found.append(
            Plugin(ep.name, f"{dist} (entry point)", module.strip(), attr.strip() or None, _package_conf(module))
        )
    return found


def _package_conf(module: str) -> Path | None:
    """<package>/conf of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module.strip().split(".")[0])
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    conf = Path(list(spec.submodule_search_locations)[0]) / "conf"
    return conf if conf.is_dir() else None
