"""A local judge model that picks the output it finds more likely to be called best, without any API.

Why not alpaca_eval's own local path (``fn_completions: huggingface_local_completions``): in alpaca_eval 0.6.6 it
cannot run in this project's environment. Its module imports ``peft`` at the top (not a dependency here), and even
with peft installed it adds ``load_in_8bit=False`` to ``from_pretrained`` whenever CUDA is absent, which
transformers 5 rejects (``TypeError: LlamaForCausalLM.__init__() got an unexpected keyword argument
'load_in_8bit'``). It also decodes free text and parses it with a regex, which a small judge rarely answers cleanly.

What this judge does instead: it fills one of alpaca_eval's own single-example prompt templates (by default
``text_davinci_003/basic_prompt.txt``, which ends "Which is best, Output (a) or Output (b)?"), wraps it in the model's
chat template when it has one, and compares the log-likelihood the model gives to the two answers "Output (a)" and
"Output (b)". The more likely answer is the verdict; identical outputs are a tie, as in alpaca_eval. A judge that
always answers is the closest honest equivalent of greedy decoding plus parsing, at the cost of two forward passes
per item. Position bias is the caller's to cancel (``judge_against_reference`` randomises positions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import torch
from alpaca_eval import constants as alpaca_eval_constants
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from harness.annotators.alpaca_eval_judge import JudgeNotReadyError
from harness.core.chat import prompt_text
from harness.core.schema import require_choice, require_positive, require_that
from harness.core.types import Preference

_PLACEHOLDERS = ("instruction", "output_1", "output_2")


@dataclass(frozen=True)
class LocalJudgeConfig:
    """A local causal LM used as a pairwise judge."""

    model: str = field(metadata={"help": "HF checkpoint dir, or a hub model name already in the local HF cache."})
    prompt_template: str = field(
        default="text_davinci_003/basic_prompt.txt",
        metadata={
            "help": "Judge prompt: a path, or a file under alpaca_eval's evaluators_configs/. Must contain "
            "{instruction}, {output_1} and {output_2} once each (a single-example template)."
        },
    )
    verdicts: tuple[str, str] = field(
        default=("Output (a)", "Output (b)"),
        metadata={"help": "The answers meaning 'output_1 is better' and 'output_2 is better', as the prompt asks."},
    )
    use_chat_template: bool = field(
        default=True,
        metadata={"help": "Wrap the prompt as a user turn in the tokenizer's chat template when it has one."},
    )
    batch_size: int = field(default=4, metadata={"help": "Items scored per forward pass (two sequences each)."})
    max_prompt_tokens: int = field(
        default=1536,
        metadata={"help": "Longer prompts lose their beginning (the template's example), never the outputs' end."},
    )
    device: str = field(default="cpu", metadata={"help": "torch device of the judge model."})
    dtype: Literal["float32", "bfloat16", "float16"] = field(default="float32",
                                                             metadata={"help": "Judge model weights dtype."})

    def __post_init__(self):
        require_that(bool(self.model), self, "model", "a checkpoint dir or a cached hub model name")
        require_that(len(self.verdicts) == 2 and all(self.verdicts) and self.verdicts[0] != self.verdicts[1], self,
                     "verdicts", "two different non-empty strings")
        require_positive(self, "batch_size", "max_prompt_tokens")
        require_choice(self, "dtype")


def verdict(logprob_first: float, logprob_second: float) -> float:
    """The preference from the log-likelihoods of the two answers: the likelier one wins, equal is a tie."""
    if logprob_first > logprob_second:
        return Preference.FIRST
    if logprob_second > logprob_first:
        return Preference.SECOND
    return Preference.TIE


def fill_template(template: str, instruction: str, output_1: str, output_2: str) -> str:
    """Fills the placeholders in one pass, so braces or placeholder names inside the outputs stay as written."""
    values = {"instruction": instruction, "output_1": output_1, "output_2": output_2}
    return re.sub(r"\{(instruction|output_1|output_2)\}", lambda match: values[match.group(1)], template)


def read_template(spec: str) -> str:
    """The text of a prompt template given as a path or relative to alpaca_eval's evaluators_configs/.

    Raises:
        ValueError: the file does not exist, or a placeholder is missing or repeated (a batched template).
    """
    candidates = (Path(spec), Path(alpaca_eval_constants.EVALUATORS_CONFIG_DIR) / spec)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise ValueError(f"local judge prompt_template {spec!r} is neither a file nor under alpaca_eval's configs")
    template = path.read_text()
    counts = {name: template.count("{" + name + "}") for name in _PLACEHOLDERS}
    if any(count != 1 for count in counts.values()):
        raise ValueError(
            f"local judge prompt_template {spec!r} must contain each of {{instruction}}, {{output_1}}, "
            f"{{output_2}} exactly once, got counts {counts}"
        )
    return template


class LocalLikelihoodJudge:
    """A local causal LM as a pairwise judge, by the likelihood of its two possible answers (see the module doc).

    The model is loaded on first use, so building the judge (at config time) costs nothing.
    """

    def __init__(self, config: LocalJudgeConfig):
        self.config = config
        self.name = f"local:{config.model}"
        self._template = read_template(config.prompt_template)
        self._model = None
        self._tokenizer = None

    def __repr__(self) -> str:
        return f"LocalLikelihoodJudge({self.config!r})"

    def check_ready(self) -> None:
        """Raises JudgeNotReadyError (one line) if the judge model's config cannot be found, before any training."""
        try:
            AutoConfig.from_pretrained(self.config.model)
        except (OSError, ValueError) as err:
            raise JudgeNotReadyError(
                f"judge {self.name!r}: cannot find the judge model ({type(err).__name__}); give a checkpoint dir or "
                "a hub name already in the local cache"
            ) from None

    def annotate(
        self, instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]
    ) -> list[float]:
        """One verdict per item: FIRST, SECOND, or TIE (identical outputs, or exactly equal likelihoods)."""
        items = list(zip(instructions, outputs_1, outputs_2, strict=True))
        to_score = [i for i, (_, first, second) in enumerate(items) if first != second]
        logprobs = self.answer_logprobs([fill_template(self._template, *items[i]) for i in to_score])
        preferences = [Preference.TIE] * len(items)
        for i, (first, second) in zip(to_score, logprobs):
            preferences[i] = verdict(first, second)
        return preferences

    @torch.no_grad()
    def answer_logprobs(self, prompts: Sequence[str]) -> list[tuple[float, float]]:
        """log p(answer | prompt) for both answers of each prompt, summed over the answer's tokens."""
        model, tokenizer = self._load()
        answers = [tokenizer(v, add_special_tokens=False)["input_ids"] for v in self.config.verdicts]
        scores = []
        for start in range(0, len(prompts), self.config.batch_size):
            contexts = [self._context_ids(p) for p in prompts[start : start + self.config.batch_size]]
            sequences = [context + answer for context in contexts for answer in answers]  # 2 per prompt
            sums = self._continuation_logprobs(model, sequences, [len(a) for _ in contexts for a in answers])
            scores.extend(zip(sums[0::2], sums[1::2]))
        return scores

    def _context_ids(self, prompt: str) -> list[int]:
        tokenizer = self._tokenizer
        if self.config.use_chat_template and tokenizer.chat_template:
            # the template adds its own BOS
            ids = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        else:
            ids = tokenizer(prompt + "\n")["input_ids"]  # the answer starts on its own line, as the template shows
        return ids[-self.config.max_prompt_tokens :]

    @staticmethod
    def _continuation_logprobs(model, sequences: list[list[int]], answer_lengths: list[int]) -> list[float]:
        """Sum of log-probabilities of the last ``answer_lengths[j]`` tokens of each sequence, in one forward pass.

        Sequences are left-padded so every answer ends at the last position, which lets the model compute logits
        for the last few positions only (``logits_to_keep``) instead of the whole (batch, length, vocab) tensor.
        """
        width = max(map(len, sequences))
        ids = torch.zeros(len(sequences), width, dtype=torch.long)  # pad id 0: padded positions are masked out
        mask = torch.zeros_like(ids)
        for row, sequence in enumerate(sequences):
            ids[row, width - len(sequence) :] = torch.tensor(sequence)
            mask[row, width - len(sequence) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # real tokens at 0.. whatever the padding
        keep = max(answer_lengths) + 1
        device = model.device
        logits = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            logits_to_keep=keep,
        ).logits.float()  # (2B, keep, V): position t predicts token t + 1
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # (2B, keep - 1, V) predicting the last keep-1 tokens
        targets = ids[:, width - keep + 1 :].to(device)  # (2B, keep - 1)
        token_logprobs = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return [float(token_logprobs[row, -n:].sum()) for row, n in enumerate(answer_lengths)]

    def _load(self):
        if self._model is None:
            self._tokenizer = AutoTokenizer.from_pretrained(self.config.model)
            self._model = AutoModelForCausalLM.from_pretrained(
                self.config.model, dtype=getattr(torch, self.config.dtype)
            ).to(self.config.device)
            self._model.eval()
        return self._model, self._tokenizer


def local_judge(model: str | Path, **overrides) -> LocalLikelihoodJudge:
    """A local judge on ``model`` (a checkpoint dir or cached hub name); ``overrides`` set LocalJudgeConfig fields."""
    return LocalLikelihoodJudge(LocalJudgeConfig(model=str(model), **overrides))
