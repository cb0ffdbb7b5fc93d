"""The run context: builds each shared stage once per run, caches it on disk, and hands it to the methods.

Methods never train a shared stage themselves. They ask the context, and the context keys every stage by its
config and inputs (see :mod:`harness.cache`), so ``--methods sft ppo rlp_uml rlp_spg`` trains the SFT model, the
reward model and the first PPO policy once, and a second identical run trains nothing.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cached_property
from pathlib import Path
from typing import Callable

from datasets import Dataset, concatenate_datasets

from harness import distributed
from harness.cache import StageCache, fingerprint
from harness.config import RunConfig
from harness.core.precision import mixed_precision
from harness.core.rm_accuracy import pairwise_accuracy
from harness.core.types import PPORun
from harness.generation import Generator
from harness.suites.annotators import labelled_pairs, stable_seed
from harness.suites.base import Suite
from harness.trainers.config import PPOConfig
from harness.trainers.ppo import load_ppo_run, train_ppo
from harness.trainers.reward import AuxiliaryLoss, train_reward_model
from harness.trainers.scoring import RewardModelScorer
from harness.trainers.sft import train_sft


def dataset_fingerprint(data: Dataset) -> str:
    """A content hash of a split, so a stage is rebuilt when its data changes."""
    return fingerprint(data.to_list())


class RunContext:
    """Shared stages of one seed of one run.

    Args:
        config: the resolved run config.
        suite: the preset's suite; ``splits`` its data (built once per run).
        seed: the training seed of this context.
        cache: where stages are built and found.
        generator: the generation backend for samples and evaluation outputs.
        base_model: the checkpoint SFT starts from.
        log: one line per event, to the console and the run log.
    """

    def __init__(
        self,
        config: RunConfig,
        suite: Suite,
        splits: dict[str, Dataset],
        seed: int,
        cache: StageCache,
        generator: Generator,
        base_model: Path,
        log: Callable[[str], None] = print,
    ):
        self.config = config
        self.suite = suite
        self.splits = splits
        self.seed = seed
        self.cache = cache
        self.generator = generator
        self.base_model = base_model
        self.log = log
        self.stage_times: list[dict] = []
        self._scorer: RewardModelScorer | None = None
        self._labelled: dict[str, Dataset] = {}  # labelled_pairs per split: every reward model of the seed asks
        self.device = distributed.device()

    # -- shared stages -------------------------------------------------------------------------------------------

    def stage(self, name: str, inputs: dict, build: Callable[[Path], None], collective: bool = False,
              training: bool | None = None) -> Path:
        """A cached stage of this seed; records its wall time (0 when reused) for the report.

        ``collective``: a training stage, built by every process together when there are several; other stages are
        built by the main process alone (see :mod:`harness.distributed`). ``training``: the stage is part of what a
        method costs to train (its ``train_wall_s``); collective stages are, others (samples a method trains on)
        say so. Checkpoints among ``inputs`` are passed as :class:`~pathlib.Path`: the cache keys them by what they
        hold, not by where they are. A run in half precision keys its stages by it too, so a shared cache never
        hands a bf16 run a float32 stage (float32 keys are as they always were).
        """
        inputs = {**inputs, "seed": self.seed}
        if (precision := mixed_precision()) != "no":
            inputs["precision"] = precision
        result = distributed.build_stage(self.cache, name, inputs, build, collective)
        self.stage_times.append({"stage": name, "path": result.path.name, "reused": result.reused,
                                 "build_wall_s": round(result.wall_s, 2),
                                 "training": collective if training is None else training})
        return result.path

    @cached_property
    def _split_hashes(self) -> dict[str, str]:
        return {name: dataset_fingerprint(data) for name, data in self.splits.items()}

    def sft(self) -> Path:
        """The SFT policy (paper step 1)."""
        cfg = self.config.sft
        return self.stage(
            "sft",
            {"base": Path(self.base_model), "sft": dataclasses.asdict(cfg), "data": self._split_hashes["sft"]},
            lambda out: train_sft(self.base_model, self.splits["sft"], cfg, out, self.seed),
            collective=True,
        )

    def reward_model(self, extra_pairs: Dataset | None = None, auxiliary: AuxiliaryLoss | None = None) -> Path:
        """A Bradley-Terry reward model from the SFT model on the preference split (paper steps 2 and 5).

        Args:
            extra_pairs: preference-schema rows appended to the preference split (RLP-SPG's synthetic pairs).
            auxiliary: a loss trained jointly, weighted by its ``weight`` (RLP-UML's multi-view loss).

        The stage also records the model's held-out accuracy on the gold-labelled ``val`` pairs
        (``metrics.json``) and, with an auxiliary loss, its loss curve (``auxiliary_curve.json``).
        """
        sft = self.sft()
        pairs = self.labelled_pairs("preference")
        inputs = {"init": Path(sft), "reward": dataclasses.asdict(self.config.reward),
                  "data": dataset_fingerprint(pairs)}
        if extra_pairs is not None:
            inputs["extra_pairs"] = dataset_fingerprint(extra_pairs)
            pairs = _concat(pairs, extra_pairs)
        if auxiliary is not None:
            inputs["auxiliary"] = auxiliary.cache_key()
        val = self.labelled_pairs("val")  # a stage of its own: asked for here, never from inside the build

        def build(out: Path) -> None:
            curve = train_reward_model(sft, pairs, self.config.reward, out, self.seed, auxiliary)
            if not distributed.is_main_process():
                return  # the main process alone writes the stage and measures the model it saved
            if curve:
                (out / "auxiliary_curve.json").write_text(json.dumps(curve))
            accuracy = pairwise_accuracy(
                self._score_with(out, val["instruction"], val["output_1"]),
                self._score_with(out, val["instruction"], val["output_2"]),
                val["preference"],
            )
            (out / "metrics.json").write_text(json.dumps({"val": accuracy}, indent=2))

        path = self.stage("reward", inputs, build, collective=True)
        self.log(f"reward model {path.name}: held-out accuracy {reward_model_metrics(path)['val']['accuracy']:.3f}")
        return path

    def labelled_pairs(self, split: str) -> Dataset:
        """The ``preference`` pairs (training annotator's labels) or ``val`` pairs (gold labels).

        A suite with ``pairs_from_policy`` ships instructions only: each gets two samples of this seed's SFT policy
        (a cached stage, drawn with a seed of its own so that no later sample of the same policy repeats them) and
        the suite's annotator labels them, as AlpacaFarm built its pairs from its SFT model. The reward model then
        learns, and is tested on, the distribution PPO starts from.
        """
        if not self.suite.pairs_from_policy:
            return self.splits[split]
        if split in self._labelled:
            return self._labelled[split]
        instructions = self.splits[split]["instruction"]
        samples = self.sample(self.sft(), instructions, 2, self.suite.pair_temperature, name=f"{split}_pairs",
                              sample_seed=stable_seed("pairs", split, self.seed), training=split == "preference")
        annotator = self.suite.training_annotator() if split == "preference" else self.suite.gold_annotator()
        firsts, seconds = [s[0] for s in samples], [s[1] for s in samples]
        self._labelled[split] = Dataset.from_list(labelled_pairs(annotator, instructions, firsts, seconds))
        return self._labelled[split]

    def ppo(self, init: Path, reward_model: Path, config: PPOConfig | None = None) -> PPORun:
        """A PPO policy from ``init`` against ``reward_model`` on the unlabeled instructions (paper steps 3 and 6).

        ``config`` replaces the run's PPO config (the over-optimisation curve's own low-KL run).
        """
        cfg = config or self.config.ppo
        prompts = self.splits["unlabeled"]["instruction"]
        path = self.stage(
            "ppo",
            {"init": Path(init), "reward_model": Path(reward_model), "ppo": dataclasses.asdict(cfg),
             "data": self._split_hashes["unlabeled"]},
            lambda out: train_ppo(init, reward_model, prompts, cfg, out, self.seed),
            collective=True,
        )
        return load_ppo_run(path)

    def policy_samples(self, policy: Path) -> tuple[list[str], list[list[str]]]:
        """The policy sample set P (paper step 4): n samples per instruction of U, shared by UML, SPG and online RLHF.

        U is the unlabeled split (PPO's prompts), or, with ``policy_samples.per_preference_pair``, that many
        instructions per preference pair, the unlabeled split's cycled in order (:func:`unlabeled_instructions`).
        """
        cfg = self.config.policy_samples
        instructions = unlabeled_instructions(self.splits["unlabeled"]["instruction"], len(self.splits["preference"]),
                                              cfg.per_preference_pair)
        if cfg.max_instructions is not None:
            instructions = instructions[: cfg.max_instructions]
        samples = self.sample(policy, instructions, cfg.n, cfg.temperature, name="policy_samples", training=True)
        return instructions, samples

    def sample(self, policy: Path, instructions: list[str], n: int, temperature: float,
               name: str = "samples", sample_seed: int | None = None, training: bool = False) -> list[list[str]]:
        """n responses per instruction from ``policy``, cached as a stage (temperature 0: greedy).

        ``sample_seed`` seeds the sampler (the context's seed by default); ``training``: a method trains on these
        samples, so they count in its training time (see :meth:`stage`).
        """
        seed = self.seed if sample_seed is None else sample_seed
        path = self.stage(
            name,
            {"policy": Path(policy), "n": n, "temperature": temperature, "sample_seed": seed,
             "instructions": fingerprint(instructions), "generation": dataclasses.asdict(self.config.generation)},
            lambda out: (out / "samples.json").write_text(json.dumps(
                self.generator.generate(policy, instructions, n, temperature, seed, desc=name))),
            training=training,
        )
        return json.loads((path / "samples.json").read_text())

    def score(self, reward_model: Path, instructions: list[str], outputs: list[str]) -> list[float]:
        """Reward-model scores of (instruction, output) pairs."""
        return self._score_with(reward_model, instructions, outputs)

    def _score_with(self, reward_model: Path, instructions: list[str], outputs: list[str]) -> list[float]:
        if self._scorer is None or self._scorer.path != Path(reward_model):
            self._scorer = RewardModelScorer(reward_model, device=self.device)
        return self._scorer.score(list(instructions), list(outputs)).tolist()


def unlabeled_instructions(unlabeled: list[str], n_preference: int, per_preference_pair: float | None) -> list[str]:
    """RLP's U: the unlabeled instructions, or round(per_preference_pair x n_preference) of them, taken in order and
    cycled when the split holds fewer (None: the split as it is; the split is never empty, see
    :func:`harness.suites.validate.validate_splits`).
    """
    if per_preference_pair is None:
        return list(unlabeled)
    size = round(per_preference_pair * n_preference)
    return [unlabeled[i % len(unlabeled)] for i in range(size)]


def reward_model_metrics(path: Path) -> dict:
    """What the reward stage measured: ``{"val": {accuracy, standard_error, n, ...}}``."""
    return json.loads((Path(path) / "metrics.json").read_text())


def _concat(a: Dataset, b: Dataset) -> Dataset:
    columns = a.column_names
    return concatenate_datasets([a, b.select_columns(columns).cast(a.features)])
