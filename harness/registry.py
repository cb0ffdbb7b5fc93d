"""The one explicit registry: methods, presets and suites by name. Nothing registers itself on import.

Adding a method means writing ``methods/<name>.py`` with one class implementing :class:`methods.base.Method` (its
options dataclass and preset section beside it) and adding one line to :data:`METHODS`; the config loader finds
its section here. Judges are resolved by :func:`harness.annotators.make_annotator`.

Entries name their class as ``"module:Class"`` and are imported only when used, so ``import harness.registry`` is
instant. A method module imports torch, transformers and TRL only inside ``train``, so reading a preset's method
sections stays cheap too.
"""

from __future__ import annotations

import re
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.schema import invalid

if TYPE_CHECKING:
    from harness.config import SuiteSection
    from methods.base import Method

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


def make_method(name: str) -> Method:
    """A new instance of the method registered as ``name``."""
    return load(METHODS[name])()


def suite_config_class(name: object) -> type:
    """The options dataclass of the suite called ``name``.

    Raises:
        ConfigError: no suite has that name (one line naming the field and the choices).
    """
    if name not in SUITES:
        raise invalid("suite.name", name, ", ".join(map(repr, SUITES)))
    return load(SUITES[name][1])


def method_config_classes() -> dict[str, type]:
    """Each registered method's preset section and its options dataclass (methods without options left out)."""
    classes = {}
    for entry in METHODS.values():
        method = load(entry)
        if method.config_section is not None:
            classes[method.config_section] = method.config_class
    return classes


def make_suite(section: SuiteSection) -> Any:
    """The suite a run config's ``suite`` section names, given the options built (and checked) with the preset."""
    return load(SUITES[section.name][0])(section.options)


def resolve_methods(names: list[str]) -> list[str]:
    """Expands 'all' and checks every name; raises ValueError naming the first unknown one."""
    resolved: list[str] = []
    for name in names:
        expanded = list(METHODS) if name == "all" else [name]
        for item in expanded:
            if item not in METHODS:
                raise ValueError(f"--methods: unknown method {item!r}; choose from {', '.join(METHODS)} or all")
            if item not in resolved:
                resolved.append(item)
    return resolved
