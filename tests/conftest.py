"""Test-wide settings (no hub look-ups, one torch thread) and the fixtures several test files share.

The test models are tiny (well under a million parameters): with more than one thread, torch spends more time
synchronising threads than computing, and on a 2-core machine shared with other work a step was measured 6-30x
slower with 2 threads than with 1.

Shared helpers are fixtures here, never imported from another test file: a test module then runs (and fails) on its
own, and what the tests share is in one place. They are:

- ``models_dir``: a tiny random LLaMA policy and reward model with a word-level chat tokenizer (trainer tests);
  ``tiny_world_base_model``: the tiny world's own base model at a test size;
- ``smoke_command`` and ``stable``: the minimal-budget command line of a whole run, and results.json without the
  fields that differ between identical runs (end-to-end tests);
- ``make_run_dir`` and ``parse_html``: a finished run dir with hand-chosen numbers, and an HTML parser (report,
  leaderboard and check tests);
- ``write_hub_mirror``: a local mirror of the alpacafarm suite's hub files (suite and bad-input tests);
- ``stage_cache`` (autouse): each test module's own stage cache, the default of every run the module makes, so no
  test writes into the user's stage cache or finds another module's stages; the base models stay the user's.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from html.parser import HTMLParser  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import (  # noqa: E402
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

from benchmarks.common import REDUCED_BUDGET  # noqa: E402
from harness.core.metrics import Metric  # noqa: E402
from harness.core.rm_accuracy import ACCURACY, DRIFT, drift  # noqa: E402
from harness.evals.evaluate import KL, PROXY_REWARD  # noqa: E402
from harness.evals.mmlu import KNOWLEDGE_ACCURACY  # noqa: E402
from harness.evals.overoptimisation import best_of_n_points, fits_of  # noqa: E402
from harness.evals.overoptimisation import summarise as summarise_curves  # noqa: E402
from harness.evals.winrate import (  # noqa: E402
    OUTPUT_LENGTH,
    WIN_RATE,
    judge_against_reference,
    write_annotations,
    write_outputs,
)
from harness.pipeline import TRAINING_TIME, aggregate, default_model_cache  # noqa: E402
from harness.suites.alpacafarm.suite import SOURCES  # noqa: E402
from harness.suites.hub import mirror_path  # noqa: E402
from harness.suites.tiny.config import BaseModelConfig  # noqa: E402
from harness.suites.tiny.pretrain import build_base_model  # noqa: E402
from methods.best_of_n import best_of_n_kl  # noqa: E402

torch.set_num_threads(1)

# The user's model cache, found before any fixture points RLP_HARNESS_CACHE elsewhere.
USER_MODELS = default_model_cache()


# -- the harness cache of a test module ----------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def stage_cache(tmp_path_factory) -> Iterator[Path]:
    """The module's own harness cache (``RLP_HARNESS_CACHE`` while its fixtures and tests run); yields its stages
    dir, where the runs of the module put their stages unless given ``--cache``.

    Its ``models/`` is a link to the user's model cache: the tiny base model at the default size takes minutes to
    build, and is built once per user as for any run. The stages are the module's: no test writes into the user's
    stage cache, and a module's runs find only the stages its own runs built (a test that needs none of them passes
    ``--cache`` of its own). Autouse fixtures come first within their scope, so the module's fixtures see it too.
    """
    root = tmp_path_factory.mktemp("harness-cache")
    USER_MODELS.mkdir(parents=True, exist_ok=True)
    (root / "models").symlink_to(USER_MODELS, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLP_HARNESS_CACHE", str(root))
        yield root / "stages"


# -- tiny chat models --------------------------------------------------------------------------------------------

SPECIALS = ["<pad>", "<eos>", "<unk>", "<user>", "<assistant>"]
WORDS = ["yes", "no", "maybe", "the", "cat", "dog", "is", "a", "say", "word", "please", "now"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m.role }}> {{ m.content }} {% if m.role == 'assistant' %}<eos> {% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<assistant> {% endif %}"
)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A random 2-layer LLaMA policy and a same-shaped reward model, with a word-level chat tokenizer."""
    root = tmp_path_factory.mktemp("ppo_models")
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
        additional_special_tokens=["<user>", "<assistant>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=vocab["<pad>"],
        eos_token_id=vocab["<eos>"], bos_token_id=None, num_labels=1,
    )
    torch.manual_seed(0)
    for name, model in (("policy", LlamaForCausalLM(config)), ("rm", LlamaForSequenceClassification(config))):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return root

# A tiny PPO/GRPO task on the models_dir models: prompts, and a known reward to raise.
PROMPTS = ["say yes", "say no", "the cat is", "a dog is", "say a word", "please say yes now", "is the dog",
           "say maybe"]


class YesScorer:
    """A known reward: the fraction of response words that are "yes"."""

    def score(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return torch.tensor([r.split().count("yes") / max(len(r.split()), 1) for r in responses])


@pytest.fixture(scope="session")
def word_prompts() -> list[str]:
    """Prompts in the models_dir tokenizer's words."""
    return PROMPTS


@pytest.fixture(scope="session")
def yes_scorer() -> YesScorer:
    """A known reward: the share of "yes" among a response's words."""
    return YesScorer()


@pytest.fixture(scope="session")
def word_pairs():
    """16 preference rows in the models_dir tokenizer's words: 12 decided (preference 1 or 2), 4 ties (1.5)."""
    from datasets import Dataset

    return Dataset.from_dict({
        "instruction": ["say yes", "say no", "the cat is", "a dog is"] * 4,
        "output_1": ["yes yes", "no", "the cat", "dog"] * 4,
        "output_2": ["no", "yes yes", "dog", "the cat"] * 4,
        "preference": [1.0, 2.0, 1.5, 2.0] * 4,
    })


@pytest.fixture(scope="session")
def tiny_world_base_model(tmp_path_factory) -> Path:
    """The tiny world's base model, built as a run builds it (its byte-level BPE tokenizer and chat template), at
    the reduced budget's size and a few pretraining steps: a few seconds."""
    config = BaseModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, steps=20,
                             warmup_steps=2)
    return build_base_model(config, tmp_path_factory.mktemp("tiny_world") / "base", num_threads=1)


# -- a whole run at the minimal budget ---------------------------------------------------------------------------

# the reduced budget the profiling benchmark uses, plus: the smoke policy barely agrees with itself, so keep every
# instruction for SPG to have pairs
SMOKE = [*REDUCED_BUDGET, "spg.confidence_threshold=0.0"]


def _smoke_command(out: Path, methods: list[str] = ("all",)) -> list[str]:
    return ["--methods", *methods, "--out", str(out), *[a for o in SMOKE for a in ("--set", o)]]


def _stable(results: dict) -> dict:
    """results.json without wall-clock times, which differ between identical runs."""
    if isinstance(results, dict):
        return {k: _stable(v) for k, v in results.items()
                if "wall" not in k and k not in ("stages", "stage", "path", "values")}
    if isinstance(results, list):
        return [_stable(v) for v in results]
    if isinstance(results, float) and math.isnan(results):
        return "nan"
    return results


@pytest.fixture(scope="session")
def reduced_budget() -> list[str]:
    """The ``--set`` arguments of the reduced budget the profiling benchmark measures (one source for both)."""
    return [a for o in REDUCED_BUDGET for a in ("--set", o)]


@pytest.fixture(scope="session")
def smoke_command():
    """``smoke_command(out, methods=("all",))``: the command-line arguments of a run at the minimal budget."""
    return _smoke_command


@pytest.fixture(scope="session")
def wait_for_log_line():
    """``wait_for_log_line(log, text, process)``: polls a running ``harness.run``'s log until ``text`` appears
    (at most 300 s), and fails if the run ended first (it was too fast to interrupt where a test meant to)."""
    return _wait_for_log_line


def _wait_for_log_line(log: Path, text: str, process, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if log.exists() and text in log.read_text():
            break
        time.sleep(0.2)
    assert process.poll() is None, f"the run ended before {text!r} appeared in {log}"


@pytest.fixture(scope="session")
def stable():
    """``stable(results)``: results.json without wall-clock times and stage paths, to compare identical runs."""
    return _stable


# -- a finished run dir with hand-chosen numbers -----------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
# Tries to close a Markdown fence and an HTML <pre>, then inject.
FENCE_BREAKER = "```\n</pre>" + SCRIPT

# Per-seed values of the fixture, chosen so each column's best is known by eye:
# farm_win_rate: rlp_spg 50 > ppo 42; bar_win_rate: a tie at 33; rm_drift (lower is better): rlp_spg 0.05 < 0.12;
# rm_acc_offline: ppo 0.71 > 0.67; rm_acc_step0: ppo 0.46 > 0.41, yet below chance (0.5); train_wall_s (lower is
# better): ppo 32 < 62; proxy_reward: no direction.
FIXTURE_VALUES = {
    "ppo": {
        "farm_win_rate": [40.0, 44.0], "farm_standard_error": [3.0, 3.4], "farm_lc_win_rate": [41.0, 45.0],
        "bar_win_rate": [30.0, 36.0], "bar_standard_error": [4.0, 4.0], "bar_lc_win_rate": [31.0, 35.0],
        "knowledge_acc": [0.30, 0.32], "knowledge_stderr": [0.02, 0.02],
        "rm_acc_offline": [0.70, 0.72], "rm_acc_step0": [0.45, 0.47], "rm_acc_onpolicy": [0.60, 0.58],
        "rm_drift": [0.10, 0.14],
        "proxy_reward": [1.5, 1.7], "kl": [2.0, 2.4], "avg_length": [60.0, 64.0], "train_wall_s": [30.0, 34.0],
    },
    "rlp_spg": {
        "farm_win_rate": [48.0, 52.0], "farm_standard_error": [3.2, 3.2], "farm_lc_win_rate": [47.0, 51.0],
        "bar_win_rate": [30.0, 36.0], "bar_standard_error": [4.1, 4.1], "bar_lc_win_rate": [32.0, 34.0],
        "knowledge_acc": [0.33, 0.35], "knowledge_stderr": [0.02, 0.02],
        "rm_acc_offline": [0.66, 0.68], "rm_acc_step0": [0.40, 0.42], "rm_acc_onpolicy": [0.62, 0.62],
        "rm_drift": [0.04, 0.06],
        "proxy_reward": [1.2, 1.4], "kl": [1.0, 1.2], "avg_length": [55.0, 59.0], "train_wall_s": [60.0, 64.0],
    },
}
# Each fixture metric's spec, as the code that measures it defines it, and the fixture values that are its per-seed
# standard errors (the length-controlled win rates take their set's, for brevity).
SPECS = {"farm_win_rate": WIN_RATE, "farm_lc_win_rate": WIN_RATE, "bar_win_rate": WIN_RATE, "bar_lc_win_rate": WIN_RATE,
         "knowledge_acc": KNOWLEDGE_ACCURACY, "rm_acc_offline": ACCURACY, "rm_acc_step0": ACCURACY,
         "rm_acc_onpolicy": ACCURACY, "rm_drift": DRIFT, "proxy_reward": PROXY_REWARD, "kl": KL,
         "avg_length": OUTPUT_LENGTH, "train_wall_s": TRAINING_TIME}
STANDARD_ERRORS = {"farm_win_rate": "farm_standard_error", "farm_lc_win_rate": "farm_standard_error",
                   "bar_win_rate": "bar_standard_error", "bar_lc_win_rate": "bar_standard_error",
                   "knowledge_acc": "knowledge_stderr"}


def _fixture_metrics(values: dict[str, list[float]], seed: int) -> dict[str, Metric]:
    """One seed's metrics of a method: ``values`` by metric, with their standard errors (:data:`STANDARD_ERRORS`);
    metrics ``values`` lacks are left out."""
    errors = {name: values[column][seed] for name, column in STANDARD_ERRORS.items() if column in values}
    return {name: Metric(v[seed], SPECS[name], errors.get(name, math.nan))
            for name, v in values.items() if name in SPECS}


@pytest.fixture(scope="session")
def metric_specs() -> dict:
    """Each fixture metric's spec, by name."""
    return SPECS


@pytest.fixture(scope="session")
def fixture_metrics():
    """``fixture_metrics(values, seed)``: one seed's Metric records from per-seed values and standard errors."""
    return _fixture_metrics


# The judge's verdict on each instruction, reference first: model wins, reference wins, tie, model wins for ppo;
# rlp_spg also wins the second, in every seed and set.
VERDICTS = {"ppo": [2, 1, 1.5, 2], "rlp_spg": [2, 2, 1.5, 2]}

INSTRUCTIONS = ["Add 2 and 3.", "Reverse the word `cat`.", "List three colours | as a table.", "Say hi."]


# Over-optimisation curves exactly on Gao et al.'s forms, 40 points at d = 0: best-of-n R = d (3 - d) (peak at
# d* = 1.5, +2.25 points), PPO R = d (1 - 0.5 log d) at d = 0, 1, e, e^2 (peak at d* = e, +e/2 = +1.36 points).
CURVES = {
    "best_of_n": best_of_n_points([1, 2, 4, 8], [40 + d * (3 - d) for d in (math.sqrt(best_of_n_kl(n))
                                                                         for n in (1, 2, 4, 8))],
                                  [3.0] * 4, [0.1, 0.3, 0.5, 0.7]),
    "ppo": [{"step": step, "kl": d * d, "sqrt_kl": d, "gold_win_rate": 40 + d * (1 - 0.5 * math.log(d or 1)),
             "standard_error": 3.0, "proxy_reward": 0.2 * step}
            for step, d in ((0, 0.0), (10, 1.0), (20, math.e), (30, math.e**2))],
}
# SPG's synthetic pairs judged per seed. gold: 6 + 7 agree of 8 + 10 decisive = 13/18; training: 12/20 = 0.6.
SPG_PAIR_ACCURACY = [
    {"gold": {"n": 10, "n_ties": 2, "n_agree": 6, "accuracy": 0.75, "standard_error": 0.15},
     "training": {"n": 10, "n_ties": 0, "n_agree": 6, "accuracy": 0.6, "standard_error": 0.15}},
    {"gold": {"n": 10, "n_ties": 0, "n_agree": 7, "accuracy": 0.7, "standard_error": 0.14},
     "training": {"n": 10, "n_ties": 0, "n_agree": 6, "accuracy": 0.6, "standard_error": 0.15}},
]
# The original and refined reward models on rlp_spg's final pairs, per seed (as harness.evals.evaluate records).
REWARD_MODELS_ON_POLICY = {"rlp_spg": [
    {"reward_models_on_policy": {"original": {"accuracy": acc, "standard_error": 0.05, "n": 40},
                                 "refined": {"accuracy": acc + 0.05, "standard_error": 0.05, "n": 40},
                                 "refined_minus_original": {"difference": 0.05, "standard_error": 0.02, "n": 40}}}
    for acc in (0.55, 0.65)]}


def _outputs(method: str, seed: int) -> list[str]:
    return ["5", SCRIPT + " tac", FENCE_BREAKER if method == "rlp_spg" else f"red {IMG}", f"hi from {method} {seed}"]


class ScriptedJudge:
    """A judge whose verdict on each instruction, model against reference, is fixed in advance.

    ``annotate`` sees the outputs in the order ``judge_against_reference`` shows them, so it must undo that order
    exactly as a real judge's verdict would come back: the fixture then goes through the real writers.
    """

    name = "scripted"

    def __init__(self, references: list[str], verdicts: list[float]):
        self.verdicts = dict(zip(references, verdicts))  # reference -> verdict with the reference first

    def annotate(self, instructions, outputs_1, outputs_2):
        return [self.verdicts[first] if first in self.verdicts else 3 - self.verdicts[second]
                for first, second in zip(outputs_1, outputs_2)]


def _write_stage(stage: Path, method: str, seed: int, eval_set: str) -> None:
    """A win-rate stage dir written by the same functions the win-rate stage uses."""
    outputs = _outputs(method, seed)
    references = ["five", "tac", "red, green, blue", "Hello!"]
    preferences = VERDICTS[method]
    records = judge_against_reference(ScriptedJudge(references, preferences), INSTRUCTIONS, outputs, references,
                                      seed, generator=method)
    write_outputs(stage / "model_outputs.json", INSTRUCTIONS, outputs, method, eval_set)
    write_outputs(stage / "reference_outputs.json", INSTRUCTIONS, references, "reference", eval_set)
    write_annotations(stage / "annotations.json", records)


def _make_run_dir(root: Path, seeds: int = 2, knowledge_task: str = "tiny_knowledge") -> Path:
    """A finished run dir as harness.run writes it: two methods, ``seeds`` seeds, stage dirs with outputs."""
    run_dir = root / "run"
    run_dir.mkdir(parents=True)
    per_method, diagnostics, stages = {}, {}, []
    for method, values in FIXTURE_VALUES.items():
        per_seed = []
        for seed in range(seeds):
            eval_sets = {}
            for eval_set in ("farm", "bar"):
                name = f"winrate_{eval_set}-{method}{seed}"
                _write_stage(run_dir / "stages" / name, method, seed, eval_set)
                # Recorded as the run saw it: relative to where it was launched, not to the run dir.
                eval_sets[eval_set] = {"stage": f"runs/tiny/stages/{name}",
                                       "win_rate": values[f"{eval_set}_win_rate"][seed],
                                       "standard_error": values[f"{eval_set}_standard_error"][seed],
                                       "lc_win_rate": values[f"{eval_set}_lc_win_rate"][seed],
                                       "lc_variant": "offline-length-glm",
                                       "n_wins": 2, "n_draws": 1}
            curve = [{"step": step, "accuracy": acc, "standard_error": 0.05, "n": 40, "n_annotator_ties": 1,
                      "proxy_reward": math.nan if step == 0 else 0.1 * step, "kl": 0.05 * step}
                     for step, acc in ((0, 0.7), (10, 0.65), (20, values["rm_acc_onpolicy"][seed]))]
            history = [{"step": step, "proxy_reward": 0.1 * step + seed, "kl": 0.1 * step, "policy_loss": -0.1,
                        "value_loss": 0.5, "response_length": 20 + step} for step in range(1, 21)]
            per_seed.append({"seed": seed, **_fixture_metrics(values, seed),
                             "details": {"eval_sets": eval_sets,
                                         "knowledge": {"acc": values["knowledge_acc"][seed], "acc_stderr": 0.02,
                                                       "task": knowledge_task, "num_fewshot": 0},
                                         "drift": drift(curve),
                                         "ppo_history": history,
                                         **REWARD_MODELS_ON_POLICY.get(method, [{}] * 2)[seed]}})
            stages.append({"seed": seed, "stage": "ppo", "path": f"ppo-{method}{seed}", "reused": False,
                           "build_wall_s": values["train_wall_s"][seed]})
        per_method[method] = per_seed
        diagnostics[method] = [{"seed": s} for s in range(seeds)]
    diagnostics["rlp_spg"] = [{"seed": s, "acceptance_rate": 0.6, "synthetic_pair_accuracy": 0.7,
                               "confidence_histogram": {"0.3": 4, "0.5": 6, "0.8": 10},
                               "pair_accuracy": SPG_PAIR_ACCURACY[s]} for s in range(seeds)]
    results = aggregate("tiny", seeds, per_method)  # means and 95% intervals as the pipeline computes them
    methods = results["methods"]
    results.update(judge="gold", wall_s=143.2, stages=stages, diagnostics=diagnostics,
                   overoptimisation=summarise_curves([{"seed": s, "curves": CURVES, "fits": fits_of(CURVES)}
                                                      for s in range(seeds)]))
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(
        {"methods": list(methods), "seeds": seeds, "preset": "tiny", "suite": {"name": "tiny"},
         "model": {"base": f"models/{IMG}"},  # a user-given path: config strings reach the report too
         "eval": {"judge": "gold", "temperature": 0.7}}, sort_keys=False))
    (run_dir / "diagnostics.json").write_text(json.dumps(diagnostics))
    (run_dir / "run.log").write_text("[00:00:00] run finished\n")
    return run_dir


class _Elements(HTMLParser):
    """Collects every start tag with its attributes, and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def _parse_html(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


_make_run_dir.script, _make_run_dir.img, _make_run_dir.instructions = SCRIPT, IMG, INSTRUCTIONS


@pytest.fixture(scope="session")
def make_run_dir():
    """``make_run_dir(root, seeds=2, knowledge_task="tiny_knowledge")``: a finished run dir under ``root``.

    Its model outputs carry hostile markup: ``make_run_dir.script`` and ``make_run_dir.img``; its instructions are
    ``make_run_dir.instructions``.
    """
    return _make_run_dir


@pytest.fixture(scope="session")
def parse_html():
    """``parse_html(html)``: every start tag with its attributes (``.tags``) and the visible text (``.text``)."""
    return _parse_html


# -- the alpacafarm suite's hub files, a few records each --------------------------------------------------------

N_SIMULATED, N_HUMAN, N_FARM, N_VICUNA, N_BAR = 12, 10, 10, 3, 5


def _write_hub_mirror(root: Path) -> Path:
    """Writes a few records of every file the suite reads, in the hub's schema, at ``<root>/<repo>/<path>``.

    Every third AlpacaFarm instruction has an ``input``, as some of the real ones do; the first ``N_VICUNA`` farm
    records come from the Vicuna set; preference and LLMBar labels alternate 1, 2, 1, ...
    """

    def write(source: str, records: list[dict]) -> None:
        path = mirror_path(SOURCES[source].file, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=1))  # the hub files are JSON lists of records

    def pairs(kind: str, count: int) -> list[dict]:
        return [{"instruction": f"{kind} question {i}?", "input": "", "output_1": f"{kind} answer A{i}",
                 "output_2": f"{kind} answer B{i}", "preference": 1 + i % 2} for i in range(count)]

    write("sft", [{"instruction": f"Write sentence {i}.", "input": "about cats" if i % 3 == 0 else "",
                   "output": f"Sentence {i}."} for i in range(6)])
    write("unlabeled", [{"instruction": f"Explain topic {i}.", "input": "in one line" if i % 3 == 0 else "",
                         "output": f"Topic {i} explained."} for i in range(8)])
    write("simulated", pairs("simulated", N_SIMULATED))
    write("human", pairs("human", N_HUMAN))
    write("farm", [{"dataset": "vicuna" if i < N_VICUNA else "helpful_base", "instruction": f"Eval question {i}?",
                    "output": f"Davinci answer {i}.", "generator": "text_davinci_003"} for i in range(N_FARM)])
    write("bar", [{"input": f"Bar instruction {i}", "output_1": f"bar first {i}", "output_2": f"bar second {i}",
                   "label": 1 + i % 2} for i in range(N_BAR)])
    return root


_write_hub_mirror.sizes = {"simulated": N_SIMULATED, "human": N_HUMAN, "farm": N_FARM, "vicuna": N_VICUNA,
                           "bar": N_BAR}


@pytest.fixture(scope="session")
def write_hub_mirror():
    """``write_hub_mirror(root)``: the mirror at ``root``; its sizes are ``write_hub_mirror.sizes`` (simulated,
    human, farm, vicuna and bar records)."""
    return _write_hub_mirror
