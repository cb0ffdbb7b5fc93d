"""The ``alpacafarm`` suite: the paper's data and judges behind the harness's Suite protocol.

Where every split comes from (all through :mod:`harness.suites.hub`, so a local mirror works the same way):

- ``sft``, ``unlabeled``: AlpacaFarm's ``alpaca_instructions`` splits (10k demonstrations, 20k instructions).
- ``preference``, ``val``: AlpacaFarm's simulated (``alpaca_noisy_multi_preference``) or human
  (``alpaca_human_preference``) pairs; ``val`` is a seeded hold-out of them.
- ``farm``: AlpacaEval's 805 instructions with text-davinci-003's outputs as references (``tatsu-lab/alpaca_eval``).
- ``vicuna``: the 80 of them whose source is the Vicuna set (their ``dataset`` field is ``vicuna``).
- ``bar``: LLMBar Natural's 100 instructions; references per ``bar_references`` (text-davinci-003 is retired).

AlpacaFarm keeps an optional ``input`` beside each instruction; the harness has one instruction string, so a
non-empty input is appended after a blank line, exactly as AlpacaEval merged them when it built its evaluation set
from AlpacaFarm's (its self-instruct items read "<instruction>\\n\\n<input>").

Annotators: the training annotator is the preference file's own labels (preferences are given, not simulated
here); the gold annotator is the configured alpaca_eval judge (``alpaca_farm_greedy_gpt4``, the paper's).
"""

from __future__ import annotations

import importlib.util
import random
from functools import cached_property
from pathlib import Path
from typing import NamedTuple, Sequence

from datasets import Dataset, Features, Value

from harness.annotators import make_annotator
from harness.core.errors import ConfigError
from harness.core.types import Preference
from harness.suites.alpacafarm.config import LLMBAR_PREFERRED, AlpacaFarmConfig
from harness.suites.base import Annotator
from harness.suites.hub import HubFile, load_json, read_json, resolve_model
from harness.suites.validate import check_instructions

PAPER_BASE_MODEL = "huggyllama/llama-7b"  # LLaMA-7B in transformers format, the paper's base model
VICUNA = "vicuna"

ALPACA_FARM = "tatsu-lab/alpaca_farm"
ALPACA_EVAL = "tatsu-lab/alpaca_eval"
LLMBAR = "princeton-nlp/LLMBar"
LLMBAR_COMMIT = "900616bff90b6c6c8e1681f7d079250637c55992"  # github.com/princeton-nlp/LLMBar, pinned


class Source(NamedTuple):
    """One file the suite reads and the columns it needs from it."""

    file: HubFile
    columns: tuple[str, ...]


# Where each schema fact comes from:
# - tatsu-lab/alpaca_farm: file paths from the `_URLS` of its loading script alpaca_farm.py
#   (huggingface.co/datasets/tatsu-lab/alpaca_farm/blob/main/alpaca_farm.py): alpaca_instructions/{sft,preference,
#   unlabeled,val}.json and alpaca_{noisy_multi,human,gpt4}_preference.json. Columns from the script's `_info`
#   (commit 2dc5ca1: the preference configs have instruction, input, output_1, output_2, preference as int64) and
#   from AlpacaFarm's SFT data code (github.com/tatsu-lab/alpaca_farm, src/alpaca_farm/data_preprocessor.py:
#   "Must have columns 'instruction', 'input', and 'output'"; preference 1 or 2, `{1: 0, 2: 1}[example["preference"]]`).
# - tatsu-lab/alpaca_eval: alpaca_eval.json at the repository root (tree of huggingface.co/datasets/tatsu-lab/
#   alpaca_eval; alpaca_eval's constants.py loads config "alpaca_eval", split "eval", from it). Columns dataset,
#   instruction, output, generator; 805 rows, generator "text_davinci_003", dataset one of helpful_base, koala,
#   oasst, selfinstruct, vicuna (80 rows): the same records as results/text_davinci_003/model_outputs.json of
#   github.com/tatsu-lab/alpaca_eval.
# - princeton-nlp/LLMBar: the hub repository holds only a loading script (LLMBar.py); the data are the JSON files of
#   github.com/princeton-nlp/LLMBar (README: "All the data are stored in Dataset/"), Natural in
#   Dataset/LLMBar/Natural/dataset.json: 100 records of input (the instruction), output_1, output_2, label (1 or 2,
#   the objectively better output).
SOURCES = {
    "sft": Source(HubFile(ALPACA_FARM, "alpaca_instructions/sft.json"), ("instruction", "input", "output")),
    "unlabeled": Source(HubFile(ALPACA_FARM, "alpaca_instructions/unlabeled.json"), ("instruction", "input")),
    "simulated": Source(
        HubFile(ALPACA_FARM, "alpaca_noisy_multi_preference.json"),
        ("instruction", "input", "output_1", "output_2", "preference"),
    ),
    "human": Source(
        HubFile(ALPACA_FARM, "alpaca_human_preference.json"),
        ("instruction", "input", "output_1", "output_2", "preference"),
    ),
    "farm": Source(HubFile(ALPACA_EVAL, "alpaca_eval.json"), ("instruction", "output", "generator", "dataset")),
    "bar": Source(
        HubFile(LLMBAR, "Dataset/LLMBar/Natural/dataset.json", host="github", revision=LLMBAR_COMMIT),
        ("input", "output_1", "output_2", "label"),
    ),
}

EVAL_COLUMNS = ["instruction", "output", "generator"]
PAIR_FEATURES = Features({"instruction": Value("string"), "output_1": Value("string"), "output_2": Value("string"),
                          "preference": Value("float64")})


def merge_input(instruction: str, input_text: str | None) -> str:
    """One instruction string from AlpacaFarm's instruction and optional input (AlpacaEval's merge)."""
    return f"{instruction}\n\n{input_text}" if input_text else instruction


def hold_out(pairs: Dataset, size: int, seed: int) -> tuple[Dataset, Dataset]:
    """Splits ``pairs`` into (rest, held-out ``size`` rows), the held-out rows drawn with ``random.Random(seed)``.

    Both keep the file's order, so the split depends only on the file, ``size`` and ``seed``.

    Raises:
        ConfigError: ``size`` leaves no pairs to train on.
    """
    if size >= len(pairs):
        raise ConfigError(f"suite.val_size: {size} leaves none of the {len(pairs)} preference pairs to train on")
    held = set(random.Random(seed).sample(range(len(pairs)), size))
    return (pairs.select([i for i in range(len(pairs)) if i not in held]),
            pairs.select(sorted(held)))


def preferred_output(output_1: str, output_2: str, label: int) -> str:
    """The output LLMBar labels as better (label 1 or 2)."""
    return output_1 if label == 1 else output_2


class DatasetLabels:
    """The labels a preference file already holds, as an annotator.

    It answers for the pairs of that file only (in either order: swapping the outputs mirrors the label). It cannot
    judge new pairs, such as RLP-SPG's synthetic ones: measure those against the gold judge instead.
    """

    def __init__(self, name: str, pair_sets: Sequence[Dataset]):
        self.name = name
        self._labels = {
            (x, a, b): p
            for data in pair_sets
            for x, a, b, p in zip(data["instruction"], data["output_1"], data["output_2"], data["preference"])
        }

    def annotate(
        self, instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]
    ) -> list[float]:
        """The stored label of each pair.

        Raises:
            ValueError: a pair the file does not hold, or sequences of different lengths.
        """
        labels = []
        for x, a, b in zip(instructions, outputs_1, outputs_2, strict=True):
            if (x, a, b) in self._labels:
                labels.append(self._labels[(x, a, b)])
            elif (x, b, a) in self._labels:
                labels.append(Preference.FIRST + Preference.SECOND - self._labels[(x, b, a)])
            else:
                raise ValueError(
                    f"annotator {self.name!r} only knows the pairs of its preference file, not this pair for "
                    f"{x[:60]!r}; judge new pairs with the gold judge (spg.accuracy_annotators: [gold])"
                )
        return labels


class AlpacaFarmSuite:
    """The paper's setting: AlpacaFarm's data and labels, three evaluation sets, alpaca_eval judges, MMLU.

    Nothing is read until :meth:`splits` (or an annotator built on the splits) is called, so a run checks its judge
    before touching the hub.
    """

    name = "alpacafarm"
    eval_sets = ("farm", "bar", "vicuna")
    pairs_from_policy = False  # AlpacaFarm ships its pairs (drawn from its own SFT model)
    knowledge_chat = False  # MMLU few-shot as plain text, as the paper scores it
    knowledge_chance = 0.25  # four choices

    def __init__(self, config: AlpacaFarmConfig | None = None) -> None:
        self.config = config or AlpacaFarmConfig()

    def splits(self) -> dict[str, Dataset]:
        """sft, preference, unlabeled, val, farm, bar and vicuna in the schemas of :mod:`harness.suites.base`.

        Raises:
            ConfigError: a file is missing from the mirror or needs the hub (one line naming it), is not JSON, has
                other columns than its hub schema, or is an evaluation file with an empty or repeated instruction.
        """
        return dict(self._splits)

    @cached_property
    def _splits(self) -> dict[str, Dataset]:
        cfg = self.config
        sft, unlabeled = self._load("sft"), self._load("unlabeled")
        train, val = hold_out(self._pairs(cfg.preferences), cfg.val_size, cfg.split_seed)
        farm = self._load("farm")
        check_instructions(farm["instruction"], f"dataset {SOURCES['farm'].file}", unique=True)
        vicuna = [i for i, source in enumerate(farm["dataset"]) if source == VICUNA]
        farm = farm.select_columns(EVAL_COLUMNS)
        splits = {
            "sft": Dataset.from_dict({"instruction": _instructions(sft), "output": sft["output"]}),
            "preference": train,
            "unlabeled": Dataset.from_dict({"instruction": _instructions(unlabeled)}),
            "val": val,
            "farm": farm,
            "bar": self._bar(),
            "vicuna": farm.select(vicuna),
        }
        if cfg.max_train_items is not None:
            for name in ("sft", "preference", "unlabeled"):
                splits[name] = splits[name].select(range(min(cfg.max_train_items, len(splits[name]))))
        return splits

    def _load(self, source: str) -> Dataset:
        file, columns = SOURCES[source]
        return load_json(file, columns, self.config.data_dir, f"suite {self.name}")

    def _pairs(self, preferences: str) -> Dataset:
        raw = self._load(preferences)
        labels = set(raw["preference"])
        if not labels <= {1, 2}:
            raise ConfigError(f"dataset {SOURCES[preferences].file}: preference must be 1 or 2, found {sorted(labels)}")
        return Dataset.from_dict(
            {"instruction": _instructions(raw), "output_1": raw["output_1"], "output_2": raw["output_2"],
             "preference": [float(p) for p in raw["preference"]]},
            features=PAIR_FEATURES,
        )

    def _bar(self) -> Dataset:
        raw = self._load("bar")
        instructions = raw["input"]
        check_instructions(instructions, f"dataset {SOURCES['bar'].file}: column 'input'", unique=True)
        if self.config.bar_references == LLMBAR_PREFERRED:
            outputs = [preferred_output(a, b, label) for a, b, label in zip(raw["output_1"], raw["output_2"],
                                                                             raw["label"])]
            generators = [LLMBAR_PREFERRED] * len(instructions)
        else:
            outputs, generators = self._references(instructions, Path(self.config.bar_references))
        return Dataset.from_dict({"instruction": instructions, "output": outputs, "generator": generators})

    @staticmethod
    def _references(instructions: list[str], path: Path) -> tuple[list[str], list[str]]:
        if not path.is_file():
            raise ConfigError(f"suite.bar_references: {path} is not a file (nor {LLMBAR_PREFERRED!r})")
        data = read_json(path, ("instruction", "output", "generator"), "suite.bar_references")
        check_instructions(data["instruction"], f"suite.bar_references: {path}", unique=True)
        by_instruction = {x: (o, g) for x, o, g in zip(data["instruction"], data["output"], data["generator"])}
        missing = [x for x in instructions if x not in by_instruction]
        if missing:
            raise ConfigError(
                f"suite.bar_references: {path} has no reference for {len(missing)} of the {len(instructions)} "
                f"LLMBar Natural instructions, e.g. {missing[0][:60]!r}"
            )
        outputs, generators = zip(*(by_instruction[x] for x in instructions))
        return list(outputs), list(generators)

    def training_annotator(self) -> DatasetLabels:
        """The labels of the preference file (``val`` included): AlpacaFarm's simulated or human annotators."""
        source = SOURCES[self.config.preferences].file.path.removesuffix(".json")
        return DatasetLabels(f"{source}-labels", [self._splits["preference"], self._splits["val"]])

    def gold_annotator(self) -> Annotator:
        """The configured alpaca_eval judge (``check_ready()`` tells whether its API key is there)."""
        return make_annotator(self.config.gold_judge, self, field="suite.gold_judge")

    def canonical_answer(self, instruction: str, output: str) -> str:
        """The output with case and spacing normalised: open-ended answers have no shorter canonical form."""
        return " ".join(output.lower().split())

    def pair_kind(self, instruction: str, output_1: str, output_2: str) -> None:
        """None: a judge's preference between two real outputs says nothing about what separates them."""
        return None

    def base_model(self, cache_dir: Path) -> Path:
        """The paper's LLaMA-7B (``huggyllama/llama-7b``) with AlpacaFarm's prompt format, from the hub's cache.

        Raises:
            ConfigError: the model is not cached and the hub cannot be reached.
        """
        return resolve_model(PAPER_BASE_MODEL, Path(cache_dir))

    def knowledge_task(self) -> tuple[Path, str]:
        """lm-eval's own ``mmlu`` group (its folder alone, so indexing takes about a second); data from the hub."""
        lm_eval_dir = Path(importlib.util.find_spec("lm_eval").submodule_search_locations[0])
        return lm_eval_dir / "tasks" / "mmlu" / "default", "mmlu"


def _instructions(data: Dataset) -> list[str]:
    return [merge_input(x, i) for x, i in zip(data["instruction"], data["input"])]
