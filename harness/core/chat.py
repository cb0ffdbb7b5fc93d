"""The one chat format every model here sees: SFT, reward training and scoring, PPO rollouts, generation, the judge.

A reward model must score exactly the text it was trained on, and a policy must be prompted exactly as it was
fine-tuned; building the messages in one place keeps the two from drifting apart. The tokenizer's own chat
template turns them into text, and it alone adds special tokens (so tokenize such text with
``add_special_tokens=False``).
"""

from __future__ import annotations

from typing import Any


def user_turn(instruction: str) -> list[dict]:
    """The prompt's messages: one user turn holding the instruction."""
    return [{"role": "user", "content": instruction}]


def assistant_turn(output: str) -> list[dict]:
    """A response's messages: one assistant turn (TRL's completion, chosen and rejected columns)."""
    return [{"role": "assistant", "content": output}]


def conversation(instruction: str, output: str | None = None) -> list[dict]:
    """The instruction and, if given, its response, as chat messages."""
    return user_turn(instruction) + (assistant_turn(output) if output is not None else [])


def prompt_text(tokenizer: Any, instruction: str) -> str:
    """The text a policy is prompted with: the user turn and the template's opening of the assistant's reply."""
    return tokenizer.apply_chat_template(user_turn(instruction), add_generation_prompt=True, tokenize=False)


def conversation_text(tokenizer: Any, instruction: str, output: str) -> str:
    """The text a reward model reads for one (instruction, response) pair."""
    return tokenizer.apply_chat_template(conversation(instruction, output), tokenize=False)
