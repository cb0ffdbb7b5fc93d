"""The one explicit registry: methods, presets and suites by name. Nothing registers itself on import.

Built-in methods and suites are the lines of :data:`METHODS` and :data:`SUITES`; adding one in the tree means writing
``methods/<name>.py`` with one class implementing :class:`methods.base.Method` (its options dataclass and preset
section beside it) and adding one line here; the config loader finds its section here. Judges are resolved by
:func:`harness.annotators.make_annotator`.

Other packages bring methods and suites through entry points (:mod:`harness.core.plugins`: groups
``rlp_harness.methods`` and ``rlp_harness.suites``), resolved here by name when a name is asked for, never at
import. ``all`` means the built-in methods only, so a stored leaderboard's ``all`` means the same whatever is
installed; a plugin method runs when named (``--methods all my_method``), and only then does its options section
enter the run's config. A name both built in and brought by a plugin, a plugin that fails to import, or one whose
object is not a method (or a suite) is one line naming the plugin, raised only when that name is asked for.

Entries name their class as ``"module:Class"`` and are imported only when used, so ``import harness.registry`` is
instant. A method module imports torch, transformers and TRL only inside ``train``, so reading a preset's method
sections stays cheap too.
"""

from __future__ import annotations

import dataclasses
import re
from importlib import import_module
from pathlib import Path
from typing import Any, Iterable

from harness.core.errors import ConfigError
from harness.core.plugins import METHODS_GROUP, SUITES_GROUP, find, plugin_names
from harness.core.schema import invalid

PRESET_DIR = Path(__file__).parent / "presets"

METHODS: dict[str, str] = {
    "sft": "methods.sft:SFT",
    "ppo": "methods.ppo:PPO",
    "best_of_n": "methods.best_of_n:BestOfN",
    "rlp_uml": "methods.rlp_uml:RLPUML",
    "rlp_spg": "methods.rlp_spg:RLPSPG",
    "dpo": "methods.dpo:DPO",
    "expert_iteration": "methods.expert_iteration:ExpertIteration",
    "grpo": "methods.grpo:GRPO",
    "online_rlhf": "methods.online_rlhf:OnlineRLHF",
    "online_rlhf_gold": "methods.online_rlhf:OnlineRLHFGold",
}

# A preset's name names files: runs/<preset>, leaderboards/<preset>.csv. Letters, digits, '-' and '_' only, so that
# it can never be a path (``../../x``) that writes outside those dirs.
PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_preset_name(name: object) -> None:
    """Raises ConfigError (one line, naming the field) unless ``name`` is a valid preset name."""
    if not isinstance(name, str) or not PRESET_NAME.fullmatch(name):
        raise invalid("preset", name, "a name of letters, digits, '-' and '_' (not a path)")


PRESETS: dict[str, Path] = {
    "tiny": PRESET_DIR / "tiny.yaml",
    "smollm2": PRESET_DIR / "smollm2.yaml",
    "smollm2-gpu": PRESET_DIR / "smollm2-gpu.yaml",
    "alpacafarm": PRESET_DIR / "alpacafarm.yaml",
}


# A suite: its class and the dataclass of its options (the preset's ``suite`` mapping minus ``name``).
SUITES: dict[str, tuple[str, str]] = {
    "tiny": ("harness.suites.tiny:TinySuite", "harness.suites.tiny:TinyWorldConfig"),
    "verifiable": ("harness.suites.verifiable:VerifiableSuite", "harness.suites.verifiable:VerifiableConfig"),
    "alpacafarm": ("harness.suites.alpacafarm:AlpacaFarmSuite", "harness.suites.alpacafarm:AlpacaFarmConfig"),
}


def load(entry: str) -> Any:
    """The object a ``"module:name"`` entry names, imported now."""
    module, _, name = entry.partition(":")
    return getattr(import_module(module), name)


# The members of methods.base.Method every method class must have (train callable); methods/ sits above the registry,
# so the protocol is not imported here: tests/test_plugins.py checks that the two lists agree.
METHOD_MEMBERS = ("name", "config_section", "config_class", "train")
# The methods of harness.suites.base.Suite a plugin suite's class must have, beside ``config_class``, its options.
SUITE_METHODS = ("splits", "training_annotator", "gold_annotator", "canonical_answer", "base_model",
                 "knowledge_task")


def method_names() -> list[str]:
    """Every method ``--methods`` accepts by name: the built-in ones, then the plugins' (read from the installed
    packages' metadata; none is imported)."""
    return [*METHODS, *(name for name in plugin_names(METHODS_GROUP) if name not in METHODS)]


def method_class(name: str) -> type:
    """The class of the method called ``name``, built in or brought by a plugin (checked against the protocol).

    Raises:
        ConfigError: one line: an unknown name (with the choices), or a :class:`~harness.core.plugins.PluginError`
            naming the plugin (a name defined twice, an import that fails, a class that is not a method).
    """
    plugin = find(METHODS_GROUP, name, METHODS.get(name))
    if plugin is None:
        if name not in METHODS:
            raise ConfigError(f"unknown method {name!r}; choose from {', '.join(method_names())} or all")
        return load(METHODS[name])
    cls = plugin.load()
    problem = _method_problem(cls, name)
    if problem:
        raise plugin.error(f"not a method (methods.base.Method): {problem}")
    return cls


def row_labels(options: dict[str, Any], methods: Iterable[str]) -> dict[str, str]:
    """The row name of each method whose options make it a variant of the method its name promises: an options
    dataclass may define ``variant() -> str | None`` (RLP-SPG's select-all ablation: ``rlp_spg (gamma=0)``).

    Args:
        options: the run's method options by preset section (``RunConfig.options``).
        methods: the run's method names.
    """
    labels = {}
    for name in methods:
        section = method_class(name).config_section
        variant = getattr(options.get(section), "variant", None) if section else None
        if callable(variant) and (what := variant()):
            labels[name] = f"{name} ({what})"
    return labels


def _method_problem(cls: Any, name: str) -> str | None:
    """What keeps ``cls`` from being the method called ``name``, or None."""
    if not isinstance(cls, type):
        return f"{cls!r} is not a class"
    missing = [member for member in METHOD_MEMBERS if not hasattr(cls, member)]
    if missing:
        return f"it has no {', '.join(missing)}"
    if cls.name != name:  # results, reports and leaderboards key on it
        return f"its name is {cls.name!r}, not its entry point's name {name!r}"
    if not callable(cls.train):
        return "its train is not callable"
    if cls.config_section is None:
        return None if cls.config_class is None else "it has a config_class but no config_section"
    if not isinstance(cls.config_section, str) or not cls.config_section.isidentifier():
        return f"its config_section {cls.config_section!r} is not a section name (letters, digits and '_')"
    if not dataclasses.is_dataclass(cls.config_class) or not isinstance(cls.config_class, type):
        return f"its config_class {cls.config_class!r} is not a dataclass"
    return None


def make_method(name: str) -> Any:
    """A new instance of the method called ``name``: a :class:`methods.base.Method`, which the registry does not
    import, even to type it (``methods/`` sits above the registry, and the import graph has no circle)."""
    return method_class(name)()


def suite_names() -> list[str]:
    """Every suite a preset's ``suite.name`` accepts: the built-in ones, then the plugins'."""
    return [*SUITES, *(name for name in plugin_names(SUITES_GROUP) if name not in SUITES)]


def suite_config_class(name: object) -> type:
    """The options dataclass of the suite called ``name`` (a plugin suite's class names it as ``config_class``).

    Raises:
        ConfigError: no suite has that name (one line naming the field and the choices), or a plugin's
            :class:`~harness.core.plugins.PluginError`.
    """
    plugin_suite = _plugin_suite(name)
    return plugin_suite.config_class if plugin_suite else load(SUITES[name][1])


def make_suite(name: str, options: Any) -> Any:
    """The suite called ``name`` with its ``options``: a run config's ``suite`` section, whose options were built
    (and checked) with the preset."""
    return (_plugin_suite(name) or load(SUITES[name][0]))(options)


def _plugin_suite(name: object) -> type | None:
    """The class of the plugin suite called ``name``, checked; None for a built-in suite, whose class is imported
    only to build it (it may import datasets and torch).

    Raises:
        ConfigError: as :func:`suite_config_class`.
    """
    if not isinstance(name, str):
        raise invalid("suite.name", name, ", ".join(map(repr, suite_names())))
    plugin = find(SUITES_GROUP, name, SUITES[name][0] if name in SUITES else None)
    if plugin is None:
        if name not in SUITES:
            raise invalid("suite.name", name, ", ".join(map(repr, suite_names())))
        return None
    cls = plugin.load()
    if not isinstance(cls, type):
        raise plugin.error(f"not a suite (harness.suites.base.Suite): {cls!r} is not a class")
    missing = [member for member in SUITE_METHODS if not callable(getattr(cls, member, None))]
    if missing:
        raise plugin.error(f"not a suite (harness.suites.base.Suite): it has no {', '.join(missing)}")
    options = getattr(cls, "config_class", None)
    if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        raise plugin.error(f"its config_class (the suite's options dataclass) is {options!r}, not a dataclass")
    return cls


def method_config_classes(methods: Iterable[str] = (), reserved: Iterable[str] = ()) -> dict[str, type]:
    """Each method's preset section and its options dataclass (methods without options left out): every built-in
    method's, and those of the plugin methods among ``methods`` (a run's, resolved), so that what is installed
    but not asked for never enters a run's config.

    Args:
        reserved: section names no method may take (the run-wide sections: ``ppo``, ``eval``, ...).

    Raises:
        ConfigError: a method of ``methods`` cannot be loaded, or a section is claimed twice (one line naming both
            claimants).
    """
    classes: dict[str, type] = {}
    owners = {section: "the run-wide section" for section in reserved}
    for name in [*METHODS, *(name for name in methods if name not in METHODS)]:
        method = method_class(name)
        section = method.config_section
        if section is None:
            continue
        if section in owners:
            problem = f"its config_section {section!r} is also {owners[section]}'s; allowed: a section of its own"
            plugin = find(METHODS_GROUP, name, METHODS.get(name))
            raise plugin.error(problem) if plugin else ConfigError(f"method {name!r}: {problem}")
        classes[section], owners[section] = method.config_class, f"method {name!r}"
    return classes


def resolve_methods(names: list[str]) -> list[str]:
    """Expands ``all`` (the built-in methods) and checks every name, loading the plugin methods named.

    Raises:
        ConfigError: one line starting ``--methods:``, naming the first unknown method or the broken plugin.
    """
    resolved: list[str] = []
    for name in names:
        for item in list(METHODS) if name == "all" else [name]:
            try:
                method_class(item)
            except ConfigError as err:
                raise ConfigError(f"--methods: {err}") from None
            if item not in resolved:
                resolved.append(item)
    return resolved
