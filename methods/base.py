"""The common method interface: a method is one small class, and the run context is all it may ask.

A method has a ``name``, the preset section of its own options (``config_section`` and its dataclass
``config_class``; None when it has none) and ``train(ctx)``. It never trains a shared stage itself: it asks the
run context, which builds every stage once per seed and caches it on disk, so ``--methods sft ppo rlp_uml
rlp_spg`` trains the SFT model, the reward model and the first PPO policy once.

Methods depend on the :class:`RunContext` protocol below, not on the module that implements it
(:mod:`harness.context`), so a method's logic can be tested with a small fake context.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Protocol, Sequence

if TYPE_CHECKING:
    from datasets import Dataset

    from harness.config import RunConfig
    from harness.core.types import PPORun, TrainedPolicy
    from harness.suites.base import Suite
    from harness.trainers.config import PPOConfig
    from harness.trainers.reward import AuxiliaryLoss


class RunContext(Protocol):
    """What a method may ask of the run: the shared stages of one seed, each built once and cached."""

    config: RunConfig
    suite: Suite
    splits: dict[str, Dataset]
    seed: int

    def log(self, message: str) -> None:
        """One line to the console and the run log."""

    def sft(self) -> Path:
        """The SFT policy (paper step 1)."""

    def reward_model(self, extra_pairs: Dataset | None = None, auxiliary: AuxiliaryLoss | None = None) -> Path:
        """A Bradley-Terry reward model from the SFT model (paper steps 2 and 5)."""

    def ppo(self, init: Path, reward_model: Path, config: PPOConfig | None = None) -> PPORun:
        """A PPO policy from ``init`` against ``reward_model`` (paper steps 3 and 6)."""

    def labelled_pairs(self, split: str) -> Dataset:
        """The ``preference`` pairs (training annotator's labels) or ``val`` pairs (gold labels)."""

    def policy_samples(self, policy: Path) -> tuple[list[str], list[list[str]]]:
        """RLP's policy sample set P (paper step 4): the unlabeled instructions and n samples of each."""

    def sample(self, policy: Path, instructions: list[str], n: int, temperature: float, name: str = "samples",
               sample_seed: int | None = None, training: bool = False) -> list[list[str]]:
        """n responses per instruction from ``policy`` (a cached stage; ``training``: a method trains on them)."""

    def score(self, reward_model: Path, instructions: Sequence[str], outputs: Sequence[str]) -> list[float]:
        """Reward-model scores of (instruction, output) pairs."""

    def stage(self, name: str, inputs: dict, build: Callable[[Path], None], collective: bool = False,
              training: bool | None = None) -> Path:
        """A cached stage of this seed, built by ``build(out_dir)`` unless ``inputs`` were built before; collective
        stages (trained by every process) count in the method's training time, others when ``training``."""


class Method(Protocol):
    """One RLHF method: ``train`` returns the policy to evaluate.

    Its options dataclass may also define ``global_batch_sizes() -> {"section.field": size}``, the batches that
    several processes split (DPO's, GRPO's): :func:`harness.pipeline.prepare` checks that they split evenly before
    any training, as it does SFT's and the reward model's.
    """

    name: ClassVar[str]
    config_section: ClassVar[str | None]  # its section of a preset ("spg"), read into ``config.options``
    config_class: ClassVar[type | None]  # the dataclass of that section

    def train(self, ctx: RunContext) -> TrainedPolicy: ...

