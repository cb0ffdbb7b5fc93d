"""Configuration of the embedded ``tiny`` world: data splits, annotators, reference generator, base model.

Two dataclasses, because they change for different reasons: :class:`TinyWorldConfig` shapes the data and the
annotators (and is cheap to rebuild), :class:`BaseModelConfig` shapes the pretrained base model (built once and
cached on disk under a hash of its fields, see :func:`harness.suites.tiny.pretrain.base_model_dir_name`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from harness.core.schema import require_at_least, require_positive, require_probability, require_that


@dataclass(frozen=True)
class BaseModelConfig:
    """The tiny LLaMA-architecture base model and its from-scratch pretraining on the world's raw text.

    The defaults give about 1 M parameters and a build of a few minutes on 2 CPU cores (two data-parallel
    processes), once (it is cached; docs/performance.md has the measured times).
    The world's facts are fixed (they do not depend on any seed), so the same base model serves every
    ``world_seed``.
    """

    # Architecture (transformers LlamaConfig).
    vocab_size: int = field(
        default=768, metadata={"help": "Byte-level BPE vocabulary size, special tokens included."}
    )
    hidden_size: int = field(default=128, metadata={"help": "Width of the residual stream."})
    num_layers: int = field(default=4, metadata={"help": "Number of transformer blocks."})
    num_heads: int = field(
        default=4, metadata={"help": "Attention heads per block (no grouped-query attention)."}
    )
    intermediate_size: int = field(default=384, metadata={"help": "Width of the SwiGLU MLP."})
    max_position_embeddings: int = field(
        default=128, metadata={"help": "Longest sequence the model accepts; world and chat texts stay under 48 tokens."}
    )
    # Pretraining.
    seed: int = field(
        default=0, metadata={"help": "Seed of the corpus sample, the initialisation and the data order."}
    )
    steps: int = field(
        default=1200,
        metadata={"help": "AdamW steps of pretraining; each sees fresh documents (no epochs). At 300 the model could "
                  "not yet copy words from a question into its answer."},
    )
    batch_size: int = field(default=32, metadata={"help": "Rows of seq_len tokens per pretraining step."})
    processes: int = field(
        default=2,
        metadata={"help": "Data-parallel processes of the build (PyTorch DDP over gloo, one thread each), each taking "
                  "an equal share of every batch: the same optimisation as one process, on as many cores. Part of "
                  "the base model's identity, since it changes float rounding; runs on any core count."},
    )
    seq_len: int = field(
        default=64, metadata={"help": "Tokens per row: documents, each ended by eos, are packed back to back."}
    )
    learning_rate: float = field(default=3e-3, metadata={"help": "Peak AdamW learning rate (cosine decay to 10%)."})
    warmup_steps: int = field(default=30, metadata={"help": "Linear warm-up steps before the cosine decay."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    tokenizer_documents: int = field(
        default=8000, metadata={"help": "Corpus documents the BPE tokenizer is trained on."}
    )
    # Corpus mixture.
    qa_correct_prob: float = field(
        default=0.7,
        metadata={"help": "Share of right answers in the corpus's 'Question: ... Answer: ...' documents."},
    )
    qa_evasive_prob: float = field(
        default=0.1,
        metadata={"help": "Share of evasive answers ('I am not sure.') in the corpus's question/answer documents, so "
                  "the tokenizer and the base model know the phrases SFT's demonstrations sometimes use."},
    )
    qa_pad_prob: float = field(
        default=0.3, metadata={"help": "Probability of each filler slot (preamble, closing) in corpus answers."}
    )
    fact_frequency_decay: float = field(
        default=30.0,
        metadata={"help": "How fast the corpus's mentions of facts fall off: the i-th fact of a relation has weight "
                  "exp(-i / decay), a long tail of rarely seen facts that keeps answers uncertain."},
    )

    def __post_init__(self) -> None:
        require_positive(
            self,
            "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position_embeddings",
            "steps", "batch_size", "seq_len", "learning_rate", "tokenizer_documents", "fact_frequency_decay",
            "processes",
        )
        require_probability(self, "qa_correct_prob", "qa_pad_prob", "qa_evasive_prob")
        require_that(self.hidden_size % self.num_heads == 0, self, "hidden_size",
                     f"a multiple of num_heads ({self.num_heads})")
        require_at_least(self, 0, "warmup_steps")
        require_that(self.batch_size % self.processes == 0, self, "batch_size",
                     f"a multiple of processes ({self.processes})")
        require_that(self.warmup_steps < self.steps, self, "warmup_steps", f"a number below steps ({self.steps})")
        require_that(self.seq_len <= self.max_position_embeddings, self, "seq_len",
                     f"at most max_position_embeddings ({self.max_position_embeddings})")


@dataclass(frozen=True)
class TinyWorldConfig:
    """The tiny world's data, annotators and reference generator, plus the base model it ships.

    Split sizes are counts of items; each split is spread evenly over the six instruction families. The farm and
    bar sizes keep a win rate's standard error at or under 5 points (sqrt(0.25 / 100) = 0.05 from 100 items).
    """

    world_seed: int = field(
        default=0, metadata={"help": "Seed of the data splits and annotator noise (the training seed is separate)."}
    )
    # Split sizes.
    sft_size: int = field(default=2000, metadata={"help": "Demonstrations in the sft split."})
    preference_size: int = field(
        default=4000, metadata={"help": "Instructions of the preference split; each gets two SFT samples and a label."}
    )
    unlabeled_size: int = field(default=500, metadata={"help": "Instructions in the unlabeled split (PPO and RLP)."})
    val_size: int = field(
        default=1200,
        metadata={"help": "Instructions of the val split; each gets two SFT samples labelled by gold (held-out RM "
                  "accuracy counts the pairs gold does not call a tie, about half)."},
    )
    farm_size: int = field(default=240, metadata={"help": "Items in the in-distribution 'farm' evaluation set."})
    bar_size: int = field(
        default=240,
        metadata={"help": "Items in the 'bar' evaluation set: questions past what the sft split teaches (rare facts, "
                  "long tasks), where gold ranks an admission ('I do not know.') above a fluent wrong answer. It "
                  "measures honesty, which farm cannot (there an evasion is as bad as a wrong answer)."},
    )
    # How the world writes responses.
    sft_evasive_prob: float = field(
        default=0.35,
        metadata={"help": "Probability that an sft demonstration evades the question ('I am not sure.') instead of "
                  "answering: Alpaca's demonstrations are imperfect too. Gold counts an evasion as not right, so the "
                  "SFT policy leaves points on the table that a reward model can see and PPO can take."},
    )
    sft_correct_prob: float = field(
        default=0.9,
        metadata={"help": "Probability that an sft demonstration that answers is right."},
    )
    sft_pad_prob: float = field(
        default=0.1,
        metadata={"help": "Probability of each filler slot in sft demonstrations (a padded minority lets PPO pad)."},
    )
    pair_temperature: float = field(
        default=1.0,
        metadata={"help": "Sampling temperature of the SFT policy's two outputs per preference and val instruction "
                  "(AlpacaFarm draws its pairs from its SFT model the same way)."},
    )
    # Annotators.
    flip_rate: float = field(
        default=0.25, metadata={"help": "Probability that the training annotator flips its label (AlpacaFarm's 25%)."}
    )
    length_bias: float = field(
        default=0.5,
        metadata={
            "help": "Where gold calls a tie, the probability that the training annotator prefers the output with "
            "more words (otherwise a coin flip). The bias acts only between outputs of equal gold quality, so it "
            "never rewards what gold punishes; a reward model may still extrapolate it, which PPO can exploit."
        },
    )
    # The fixed reference generator of the evaluation sets.
    reference_correct_prob: float = field(
        default=0.75, metadata={"help": "Probability that the reference output of a farm item is right."}
    )
    bar_reference_correct_prob: float = field(
        default=0.4,
        metadata={"help": "Probability that a bar reference that answers is right; it evades with sft_evasive_prob, "
                  "as the sft demonstrations do. At 0.4 the default bar reference is right on 29% of its items and admits "
                  "not knowing on 30%, and the SFT policy's bar win rate (38) sits between 25 and 50, so that a "
                  "policy can move either way."},
    )
    reference_pad_prob: float = field(
        default=0.08, metadata={"help": "Probability of each filler slot in reference outputs (mostly concise)."}
    )
    base_model: BaseModelConfig = field(
        default_factory=BaseModelConfig, metadata={"help": "The pretrained base model (see BaseModelConfig)."}
    )

    def __post_init__(self) -> None:
        require_positive(self, "sft_size", "preference_size", "unlabeled_size", "val_size", "farm_size", "bar_size",
                         "pair_temperature")
        require_probability(self, *(f.name for f in fields(self) if f.name.endswith(("_prob", "_rate", "_bias"))))
