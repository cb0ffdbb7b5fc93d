"""Judges (annotators) behind one interface, :class:`harness.suites.base.Annotator`, and the factory that names them.

Judge names, as the ``--judge`` option and preset YAMLs give them:

- ``gold``: the suite's own noise-free judge (the tiny world's programmatic quality function).
- any annotator config alpaca_eval ships, e.g. ``alpaca_farm_greedy_gpt4`` (the paper's evaluator),
  ``weighted_alpaca_eval_gpt4_turbo`` (AlpacaEval 2), ``alpaca_farm`` (AlpacaFarm's pool of simulated annotators):
  :class:`AlpacaEvalAnnotator`; API judges need their key in the environment (checked by ``check_ready``).
- ``local:<checkpoint dir or cached hub name>``: a local causal LM judging by answer likelihood
  (:class:`LocalLikelihoodJudge`).
"""

from __future__ import annotations

from harness.annotators.alpaca_eval_judge import (
    AlpacaEvalAnnotator,
    JudgeNotReadyError,
    available_configs,
    required_api_keys,
)
from harness.annotators.local_judge import LocalJudgeConfig, LocalLikelihoodJudge, local_judge
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
            names.
    """
    if name == "gold":
        return suite.gold_annotator()
    if name.startswith(LOCAL_PREFIX) and name[len(LOCAL_PREFIX) :]:
        return local_judge(name[len(LOCAL_PREFIX) :])
    if name in available_configs():
        return AlpacaEvalAnnotator(name)
    raise invalid(field, name, f"'gold', '{LOCAL_PREFIX}<checkpoint dir or cached hub name>', or one of "
                               f"alpaca_eval's annotator configs ({', '.join(available_configs())})")
