"""Plugins: methods, suites and judges that other installed packages bring, found through entry points by name.

A package makes its method available to ``--methods`` by declaring, in its own ``pyproject.toml``::

    [project.entry-points."rlp_harness.methods"]
    my_method = "my_package.method:MyMethod"

and likewise a suite (group ``rlp_harness.suites``, for a preset's ``suite.name``) and a judge
(``rlp_harness.judges``, for ``eval.judge``); ``docs/architecture.md`` says what each object must be. The
names are read from the installed distributions' metadata, which runs no plugin code, once per ``sys.path``; a
plugin's object is imported only when its name is asked for. So a plugin that fails to import breaks only the
runs that name it, and every problem with a plugin is one :class:`PluginError` line naming the plugin: its
distribution and its entry point.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from harness.core.errors import ConfigError

# The entry-point groups the harness reads, and what it calls their objects in messages.
METHODS_GROUP = "rlp_harness.methods"
SUITES_GROUP = "rlp_harness.suites"
JUDGES_GROUP = "rlp_harness.judges"
KINDS = {METHODS_GROUP: "method", SUITES_GROUP: "suite", JUDGES_GROUP: "judge"}


class PluginError(ConfigError):
    """A plugin that cannot serve the name asked for: defined twice, failing to import, or of the wrong kind."""


@dataclass(frozen=True)
class Plugin:
    """One entry point of one installed distribution, not yet loaded."""

    group: str
    name: str
    value: str  # "module:attribute"
    distribution: str  # "name version"

    def __str__(self) -> str:
        return f"plugin {self.distribution} (entry point {self.group}: {self.name} = {self.value})"

    def load(self) -> Any:
        """The object the entry point names, imported now.

        Raises:
            PluginError: any exception of the import or the attribute look-up, in one line naming the plugin.
        """
        try:
            return metadata.EntryPoint(self.name, self.value, self.group).load()
        except Exception as err:  # a plugin's import may raise anything; the message says what it was
            detail = str(err).strip().splitlines()
            raise self.error(f"cannot be loaded: {type(err).__name__}" + (f": {detail[0]}" if detail else "")) from None

    def error(self, problem: str) -> PluginError:
        """The one-line error of this plugin: ``method 'name' from plugin dist 1.0 (entry point ...): problem``."""
        return PluginError(f"{KINDS[self.group]} {self.name!r} from {self}: {problem}")


def plugin_names(group: str) -> list[str]:
    """The names the installed distributions declare in ``group``, sorted; nothing is imported."""
    return sorted(_installed(tuple(sys.path))[group])


def find(group: str, name: str, builtin: str | None = None) -> Plugin | None:
    """The plugin that brings ``name`` in ``group``, or None when none does.

    Args:
        builtin: where the harness itself defines ``name`` (e.g. ``"methods.ppo:PPO"``), None if it does not.

    Raises:
        PluginError: ``name`` is defined twice, by the harness and a plugin or by two plugins; the line names both.
    """
    found = _installed(tuple(sys.path))[group].get(name, [])
    sources = [*([f"the harness ({builtin})"] if builtin else []), *map(str, found)]
    if len(sources) > 1:
        raise PluginError(f"{KINDS[group]} {name!r} is defined twice: by {sources[0]} and by {sources[1]}; rename "
                          "the plugin's entry point")
    return found[0] if found else None


@functools.lru_cache(maxsize=4)
def _installed(path: tuple[str, ...]) -> dict[str, dict[str, list[Plugin]]]:
    """Every plugin of the harness's groups on ``path`` (``sys.path``, the cache key), by group and name.

    One scan of the distributions' metadata (tens of milliseconds) serves every look-up of a process; a package
    installed while the process runs is seen by the next process, as with most plugin systems.
    """
    found: dict[str, dict[str, list[Plugin]]] = {group: {} for group in KINDS}
    every = metadata.entry_points()
    for group, plugins in found.items():
        for entry in every.select(group=group):
            dist = f"{entry.dist.name} {entry.dist.version}" if entry.dist else "(unknown distribution)"
            plugins.setdefault(entry.name, []).append(Plugin(group, entry.name, entry.value, dist))
    return found
