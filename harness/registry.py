"""The one explicit registry: methods, presets and suites by name. Nothing registers itself on import.

Adding a method means writing ``methods/<name>.py`` with one class implementing :class:`methods.base.Method` and
adding one line to :data:`METHODS`. Judges are resolved by :func:`harness.annotators.make_annotator`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from methods.base import Method
from methods.best_of_n import BestOfN
from methods.ppo import PPO
from methods.rlp_spg import RLPSPG
from methods.rlp_uml import RLPUML
from methods.sft import SFT

PRESET_DIR = Path(__file__).parent / "presets"

METHODS: dict[str, Callable[[], Method]] = {
    "sft": SFT,
    "ppo": PPO,
    "best_of_n": BestOfN,
    "rlp_uml": RLPUML,
    "rlp_spg": RLPSPG,
}

PRESETS: dict[str, Path] = {
    "tiny": PRESET_DIR / "tiny.yaml",
    "smollm2": PRESET_DIR / "smollm2.yaml",
    "smollm2-gpu": PRESET_DIR / "smollm2-gpu.yaml",
    "alpacafarm": PRESET_DIR / "alpacafarm.yaml",
}


def _tiny_suite(options: dict) -> Any:
    from harness.config import build
    from harness.suites.tiny import TinySuite, TinyWorldConfig

    return TinySuite(build(TinyWorldConfig, options, "suite"))


def _verifiable_suite(options: dict) -> Any:
    from harness.config import build
    from harness.suites.verifiable import VerifiableConfig, VerifiableSuite

    return VerifiableSuite(build(VerifiableConfig, options, "suite"))


def _alpacafarm_suite(options: dict) -> Any:
    from harness.config import build
    from harness.suites.alpacafarm import AlpacaFarmConfig, AlpacaFarmSuite

    return AlpacaFarmSuite(build(AlpacaFarmConfig, options, "suite"))


# A suite factory takes the preset's ``suite`` options (minus ``name``) and returns a Suite.
SUITES: dict[str, Callable[[dict], Any]] = {
    "tiny": _tiny_suite,
    "verifiable": _verifiable_suite,
    "alpacafarm": _alpacafarm_suite,
}


def make_suite(options: dict) -> Any:
    """The suite named by ``options['name']``, configured with the rest of ``options``."""
    options = dict(options)
    name = options.pop("name", None)
    if name not in SUITES:
        raise ValueError(f"suite.name: {name!r} is not a known suite; choose one of {', '.join(SUITES)}")
    return SUITES[name](options)


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
