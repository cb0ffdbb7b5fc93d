"""Judges (annotators) behind one interface, :class:`harness.suites.base.Annotator`, and the factory that names them.

Judge names, as the ``--judge`` option and preset YAMLs give them:

- ``gold``: the suite's own noise-free judge (the tiny world's programmatic quality function).
- any annotator config alpaca_eval ships, e.g. ``alpaca_farm_greedy_gpt4`` (the paper's evaluator),
  ``weighted_alpaca_eval_gpt4_turbo`` (AlpacaEval 2), ``alpaca_farm`` (AlpacaFarm's pool of simulated annotators):
  :class:`AlpacaEvalAnnotator`; API judges need their key in the environment (checked by ``check_ready``).
- ``local:<checkpoint dir or cached hub name>``: a local causal LM judging by answer likelihood
  (:class:`LocalLikelihoodJudge`).
- a judge another package brings: an entry point of the group ``rlp_harness.judges``
  (:mod:`harness.core.plugins`) whose name is the judge's and whose object is called with the suite and returns
  an :class:`~harness.suites.base.Annotator` (a class taking the suite will do). It is imported only when named;
  a name the harness uses too is refused, naming both.
"""

from __future__ import annotations

from harness.annotators.alpaca_eval_judge import (
    AlpacaEvalAnnotator,
    JudgeNotReadyError,
    available_configs,
    required_api_keys,
)
from harness.annotators.local_judge import LocalJudgeConfig, LocalLikelihoodJudge, local_judge
from harness.core.errors import ConfigError
from harness.core.plugins import JUDGES_GROUP, Plugin, find, plugin_names
from harness.core.schema import invalid
from harness.suites.base import Annotator, Suite

__all__ = [
    "AlpacaEvalAnnotator",
    "JudgeNotReadyError",
    "LocalJudgeConfig",
    "LocalLikelihoodJudge",
    "available_configs",
    "local_judge",
    "make_annotator",
    "required_api_keys",
]

LOCAL_PREFIX = "local:"


def make_annotator(name: str, suite: Suite, field: str = "eval.judge") -> Annotator:
    """The judge called ``name`` (see the module docstring). Builds it only: call ``check_ready()`` where it exists.

    Raises:
        ConfigError: an unknown name, in one line naming ``field`` (the config field that gave it) and the allowed
            names; or a plugin judge that clashes with a built-in name, fails to load or returns no annotator, in
            one line naming ``field`` and the plugin.
    """
    if name.startswith(LOCAL_PREFIX) and name[len(LOCAL_PREFIX) :]:
        return local_judge(name[len(LOCAL_PREFIX) :])
    builtin = ("the suite's gold judge" if name == "gold" else
               f"alpaca_eval's annotator config {name!r}" if name in available_configs() else None)
    try:
        plugin = find(JUDGES_GROUP, name, builtin)
        if plugin is not None:
            return _plugin_judge(plugin, suite)
    except ConfigError as err:
        raise ConfigError(f"{field}: {err}") from None
    if name == "gold":
        return suite.gold_annotator()
    if builtin:
        return AlpacaEvalAnnotator(name)
    plugins = f", or a plugin judge ({', '.join(plugin_names(JUDGES_GROUP))})" if plugin_names(JUDGES_GROUP) else ""
    raise invalid(field, name, f"'gold', '{LOCAL_PREFIX}<checkpoint dir or cached hub name>', or one of "
                               f"alpaca_eval's annotator configs ({', '.join(available_configs())}){plugins}")


def _plugin_judge(plugin: Plugin, suite: Suite) -> Annotator:
    """The annotator a judge plugin's object makes for ``suite``, checked to be one."""
    judge = plugin.load()(suite)
    if not callable(getattr(judge, "annotate", None)) or not isinstance(getattr(judge, "name", None), str):
        raise plugin.error(f"called with the suite it returned {judge!r}, not an annotator (a str name and "
                           "annotate(instructions, outputs_1, outputs_2))")
    return judge
