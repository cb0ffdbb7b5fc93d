"""The tiny world's own tokenizer: byte-level BPE trained on the world's text, with a chat template.

Byte-level, so any string a policy writes can be encoded; trained on the world's text, so a few hundred merges
already make most of its words single tokens and world texts stay under ~30 tokens.

Every segment of text (a document, and the text after each special token) gets a leading space before it is split
into tokens, so a word is the same token at the start of a chat turn as inside a sentence. Without it, the first
word of an answer ("leaf" right after ``<|assistant|>``) is a rarely seen, differently split token, and a tiny model
fine-tuned for a few steps answers "Repeat the word leaf 3 times." with "gg leaf leaf.". Decoding therefore returns
that leading space (" leaf leaf leaf."); callers strip it.

Chat format (roles user and assistant only)::

    <|user|>What is 3 plus 4?<|assistant|>3 + 4 = 7.<|eos|>

The assistant turn ends with the eos token, so a model trained on it learns to stop; ``add_generation_prompt``
appends ``<|assistant|>``. The assistant content and its eos sit inside ``{% generation %}`` so that trainers can
ask for an assistant-only loss mask (``return_assistant_tokens_mask``).
"""

from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, EOS, USER, ASSISTANT = "<|pad|>", "<|eos|>", "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = (PAD, EOS, USER, ASSISTANT)

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ '" + USER + "' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '" + ASSISTANT + "' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{%- else -%}"
    "{{ raise_exception('the tiny chat template supports the roles user and assistant, got ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '" + ASSISTANT + "' }}{%- endif -%}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int) -> PreTrainedTokenizerFast:
    """Trains a byte-level BPE tokenizer on ``texts`` and wraps it for transformers.

    Training is deterministic for the same texts in the same order.

    Args:
        texts: the corpus (the world's raw text).
        vocab_size: size of the vocabulary, the 256 byte tokens and the 4 special tokens included.
        model_max_length: the longest sequence the model it serves accepts.

    Raises:
        ValueError: if ``vocab_size`` cannot hold the byte alphabet and the special tokens.
    """
    minimum = len(pre_tokenizers.ByteLevel.alphabet()) + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (bytes + special tokens), got {vocab_size}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=EOS,
        additional_special_tokens=[USER, ASSISTANT],
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
