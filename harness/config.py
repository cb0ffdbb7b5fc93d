"""The run configuration: one dataclass per section, loaded from a preset YAML plus command-line overrides.

A preset file (``harness/presets/<name>.yaml``) has one mapping per section. Every section is a dataclass with help
text on each field: the run-wide ones below, the shared stages' trainers in :mod:`harness.trainers.config` (``sft``,
``reward``, ``ppo``; DPO's and GRPO's ``dpo`` and ``grpo`` there too), each other method's own next to its method
(``methods/rlp_spg.py`` holds the ``spg`` section), found through the registry (a plugin method's only when the
run names it), and the suite's own options (``suite``: its ``name`` picks the dataclass, through the registry).
A preset states only what differs from the defaults.

A preset may derive from another: a top-level ``base: <preset name>``, beside the preset's own ``preset`` name,
merges that registered preset under this one, section by section and field by field (a list or any other value
replaces the base's; ``null`` sets a field back to its default where the default is null); the base may have a base
of its own. ``smollm2-gpu`` derives from ``smollm2`` this way. An unknown name, a chain that comes back to a preset
it started from, or a derived preset without its own name is refused in one line.

Loading is strict (:func:`harness.core.schema.build`): an unknown key, a value of the wrong type, or a value a
section's own validation rejects raises :class:`ConfigError` with one line of one form, ``<file or --set>:
section.field: what is wrong; allowed: ...``.
YAML is read with a subclass of ``yaml.SafeLoader`` only; nothing in a config is evaluated as code.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import yaml

from harness.core.errors import ConfigError
from harness.core.generation_config import GenerationConfig
from harness.core.plugins import PluginError
from harness.core.schema import build, dotted, invalid, require_at_least, require_positive, require_that
from harness.registry import PRESETS, check_preset_name, method_config_classes, suite_config_class, suite_names
from harness.trainers.config import PPOConfig, RewardConfig, SFTConfig


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no tag builds a Python object), with two fixes for hand-written configs.

    - ``1e-5`` is a float, as in YAML 1.2 and Python. PyYAML follows YAML 1.1, where a float needs a dot, so
      ``--set ppo.learning_rate=1e-5`` would be read as the string ``'1e-5'`` and refused as "not a number".
    - A key given twice in one mapping is an error: otherwise the second ``ppo:`` section silently replaces the
      first, and the run trains with settings nobody meant.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key_node.value!r} is given twice", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader


@dataclass
class ModelConfig:
    """Which model every method starts from."""

    base: str = field(
        default="suite",
        metadata={"help": "'suite' to use the suite's own base model (the tiny world builds one), "
                  "else a local HF checkpoint dir or a hub model id."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run model code shipped with a checkpoint. Off by default; never needed "
                                 "for the bundled presets."},
    )


@dataclass
class RuntimeConfig:
    """Process-wide settings."""

    torch_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads for torch (None: torch's default, one per core). On a 2-core machine that "
                  "nothing else uses, 2 threads run the tiny preset 1.5x faster than 1; while one other busy process "
                  "shares the cores, over 6x slower (docs/performance.md, section 5), so the CPU presets use 1."},
    )

    jobs: int | None = field(
        default=None,
        metadata={"help": "Worker processes that train and evaluate independent tasks (other seeds, other methods' "
                  "branches, evaluation beside training) at once, each building every stage it needs exactly once "
                  "through the stage cache's locks; results are those of one process. None: one per CPU core that "
                  "other programs leave idle as the run starts, or 1 on a GPU and under accelerate launch. Not part "
                  "of what a run is: --jobs changes no result. Also --jobs N."},
    )

    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = field(
        default="auto",
        metadata={"help": "Training and sampling precision: on a GPU 'auto' keeps what `accelerate launch` set, "
                  "else bf16 where the GPU supports it; 'no' is float32. On the CPU only 'bf16' is taken (about "
                  "twice as fast with AVX512-BF16); 'auto' and 'fp16' run float32 there."},
    )

    def __post_init__(self) -> None:
        require_positive(self, "torch_threads", "jobs")


@dataclass
class PolicySamplesConfig:
    """The policy sample set P of RLP (paper step 4): n samples per unlabeled instruction."""

    n: int = field(default=10, metadata={"help": "Samples per unlabeled instruction (paper: 10)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (paper: 1.0)."})
    per_preference_pair: float | None = field(
        default=None,
        metadata={"help": "Size of U relative to D: round(this x the preference pairs) instructions, the unlabeled "
                  "split's taken in order and cycled when it holds fewer (as the world's splits repeat theirs; a "
                  "repeated instruction gets fresh samples), so RLP can run at the paper's |U| = 2|D| while PPO "
                  "keeps the unlabeled split as its prompts. None: U is the unlabeled split."},
    )
    max_instructions: int | None = field(
        default=None, metadata={"help": "Use only the first N instructions of U (None: all)."},
    )

    def __post_init__(self) -> None:
        require_positive(self, "n", "temperature", "per_preference_pair", "max_instructions")


@dataclass
class EvalConfig:
    """How every method is scored."""

    judge: str = field(
        default="gold",
        metadata={"help": "Annotator for win rates: 'gold' (the suite's noise-free judge), an alpaca_eval "
                  "annotator config name (needs its API key), or 'local:<model dir>'."},
    )
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of evaluation outputs "
                                                      "(paper: 0.7)."})
    greedy: bool = field(default=False, metadata={"help": "Decode evaluation outputs greedily instead."})
    max_examples: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N instructions of each set (None: all)."},
    )
    knowledge: bool = field(default=True, metadata={"help": "Run the suite's knowledge task "
                                                    "(MMLU in real presets) through lm-eval."})
    knowledge_fewshot: int = field(default=0, metadata={"help": "Few-shot examples for the knowledge task "
                                                        "(paper MMLU: 5)."})
    drift: bool = field(default=True, metadata={"help": "Measure reward-model on-policy accuracy over PPO "
                                                "checkpoints."})
    drift_instructions: int = field(
        default=500,
        metadata={"help": "Instructions of the val split whose fresh policy samples (2 each, temperature 1) are "
                  "judged at each drift point: step 0 (the SFT policy) and every saved PPO checkpoint. At least 500 "
                  "keeps the standard error of each accuracy near 0.02."},
    )
    mechanism_instructions: int | None = field(
        default=None,
        metadata={"help": "Held-out instructions of the mechanism check (val instructions that are not in RLP's U, "
                  "in order): two fresh samples each (temperature 1) of the first PPO policy and of the final one, "
                  "judged, score the original reward model and each refined one. None: eval.drift_instructions. "
                  "On the tiny world about half of the pairs are gold ties, so 500 give about 250 judged pairs a "
                  "seed."},
    )
    overoptimisation: bool = field(
        default=True,
        metadata={"help": "Measure the over-optimisation curve once per seed when best_of_n runs: gold win rate and "
                  "proxy reward against sqrt(KL) for best-of-n (n = 1, 2, 4, ... up to overoptimisation_max_n) and, "
                  "when ppo runs too, for PPO's checkpoints, with Gao et al. (2022)'s fits."},
    )
    overoptimisation_ppo_kl_coef: float | None = field(
        default=None,
        metadata={"help": "The PPO curve's KL coefficient: None reads the checkpoints of the run's own PPO; a value "
                  "trains one more PPO from SFT with it (and overoptimisation_ppo_steps), so the curve can pass the "
                  "gold peak that a tuned PPO stops before."},
    )
    overoptimisation_ppo_steps: int = field(
        default=40,
        metadata={"help": "PPO steps of the curve's own run (with overoptimisation_ppo_kl_coef set)."},
    )
    overoptimisation_max_n: int = field(
        default=64,
        metadata={"help": "Largest n of the best-of-n curve (a power of 2): this many SFT samples per farm "
                  "instruction are drawn once, and best-of-n takes the first n."},
    )

    def __post_init__(self) -> None:
        require_positive(self, "drift_instructions", "mechanism_instructions", "overoptimisation_max_n",
                         "overoptimisation_ppo_steps", "max_examples")
        require_at_least(self, 0, "overoptimisation_ppo_kl_coef", "temperature", "knowledge_fewshot")
        require_that(not self.overoptimisation_max_n & (self.overoptimisation_max_n - 1), self,
                     "overoptimisation_max_n", "a power of 2")


@dataclass
class SuiteSection:
    """The ``suite`` section: the suite's registered name and its options, typed by that suite's own dataclass
    (``SUITES`` in :mod:`harness.registry`), built and checked once when the preset loads."""

    name: str
    options: Any


@dataclass
class RunConfig:
    """Everything a run depends on. ``suite`` holds the suite's name plus its own options; ``options`` holds each
    registered method's own section (``spg``, ``uml``, ``best_of_n``: see ``config_section`` in methods/), keyed by
    section name, so a new method adds its section without a field here."""

    preset: str
    suite: SuiteSection = field(metadata={"help": "{'name': <suite>, ...options of that suite's config}."})
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    policy_samples: PolicySamplesConfig = field(default_factory=PolicySamplesConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The config as plain data laid out as a preset file: the suite's name beside its options, each method's
        section at the top level. Every field is there, defaults included."""
        data = dataclasses.asdict(self)
        options = data.pop("options")
        data["suite"] = {"name": data["suite"]["name"], **data["suite"]["options"]}
        return {**data, **options}


def _shared_sections() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig) if f.name != "options"]


def _build_run_config(data: dict, methods: Iterable[str]) -> RunConfig:
    """RunConfig from a preset mapping: the shared sections by type, the suite's options by the dataclass its name
    picks, each method's section by its dataclass (the built-in methods' and those of the plugin ``methods``)."""
    method_sections = method_config_classes(methods, reserved=_shared_sections())
    shared = {key: value for key, value in data.items() if key not in method_sections}
    unknown = sorted(set(shared) - set(_shared_sections()), key=str)
    if unknown:
        allowed = ", ".join([*_shared_sections(), *method_sections])
        raise ConfigError(f"{unknown[0]}: unknown field; allowed: {allowed}")
    if "suite" in shared:
        shared["suite"] = _build_suite(shared["suite"])
    options = {section: build(cls, data.get(section, {}), section) for section, cls in method_sections.items()}
    return build(RunConfig, {**shared, "options": options}, "")


def _build_suite(data: Any) -> SuiteSection:
    """The suite section from its mapping: ``name`` picks the options dataclass the rest is built into."""
    if not isinstance(data, dict):
        raise invalid("suite", data, "a mapping: the suite's name and its options")
    options = dict(data)
    if "name" not in options:
        raise ConfigError(f"suite.name: missing; allowed: {', '.join(map(repr, suite_names()))}")
    name = options.pop("name")
    return SuiteSection(name, build(suite_config_class(name), options, "suite"))


# The top-level key of a preset that names the preset it derives from.
BASE_KEY = "base"


def load_preset(path: Path, overrides: list[str] = (), methods: Iterable[str] = ()) -> RunConfig:
    """Reads a preset YAML (merged over the preset its ``base`` names), applies ``section.field=value`` overrides
    and builds the typed config.

    Args:
        methods: the run's methods (resolved): the options sections of the plugin methods among them are read too;
            every built-in method's always is.

    Raises:
        ConfigError: one line naming the file (or the override), the field and what is allowed; or a plugin's
            :class:`~harness.core.plugins.PluginError`, which names the plugin instead.
    """
    path = Path(path)
    data = _read_preset(path, ())
    keys = {}
    for override in overrides:
        keys[_apply_override(data, override)] = override
    methods = list(methods)
    check_override_fields(data, keys, methods)
    try:
        config = _build_run_config(data, methods)
        check_preset_name(config.preset)
    except PluginError:
        raise  # about the plugin, not about this file
    except ValueError as err:  # ConfigError, and the suite registry's unknown name
        raise ConfigError(f"{_source(str(err), keys) or path}: {err}") from None
    return config


def _read_preset(path: Path, derived: tuple[Path, ...]) -> dict:
    """A preset file as a mapping, with the preset its ``base`` key names merged under it (recursively).

    ``derived`` holds the files that derive from this one, to refuse a cycle.
    """
    data = _read_preset_file(path)
    if BASE_KEY not in data:
        return data
    base = data.pop(BASE_KEY)
    if "preset" not in data:  # else it would run, and update leaderboards, under its base's name
        raise ConfigError(f"{path}: preset: missing; allowed: a name of its own (a preset with a {BASE_KEY} names "
                          "itself)")
    if base not in PRESETS:
        raise ConfigError(f"{path}: {BASE_KEY}: got {base!r}; allowed: {', '.join(map(repr, PRESETS))}")
    chain = (*derived, path)
    if PRESETS[base].resolve() in {p.resolve() for p in chain}:
        names = " -> ".join(p.stem for p in (*chain, PRESETS[base]))
        raise ConfigError(f"{path}: {BASE_KEY}: got {base!r}, a cycle ({names}); allowed: a preset that does not "
                          "derive from this one")
    return _merged(_read_preset(PRESETS[base], chain), data)


def _merged(base: dict, over: dict) -> dict:
    """``over`` laid over ``base``: mappings merge key by key, any other value (a list too) replaces the base's."""
    merged = dict(base)
    for key, value in over.items():
        both_mappings = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both_mappings else value
    return merged


def _read_preset_file(path: Path) -> dict:
    """One preset file's mapping, as written (its ``base`` not yet resolved)."""
    try:
        data = _read_yaml(path.read_text())
    except OSError as err:
        raise ConfigError(f"{path}: cannot read preset ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; a preset is a YAML file in UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = f": {err.problem}" if getattr(err, "problem", None) else ""
        raise ConfigError(f"{path}: invalid YAML{where}{problem}") from None
    sections = ", ".join([*_shared_sections(), *method_config_classes()])
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a preset is a mapping of sections ({sections})")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping of sections ({sections}), got {type(data).__name__}")
    return data


def _source(message: str, overrides: dict[str, str]) -> str | None:
    """``--set KEY=VALUE`` if the field ``message`` is about was set on the command line, else None.

    The field itself or a field inside it (a section) first; else a sibling the message names with its value, as
    the validators write another field (``ppo.minibatch_size: ...; allowed: a divisor of rollout_batch_size (30)``
    blames ``--set ppo.rollout_batch_size=30``).
    """
    field, _, rest = message.partition(":")
    field = field.split("[", 1)[0]  # spg.accuracy_annotators[1] was given as a whole by spg.accuracy_annotators
    for key, override in overrides.items():
        if key == field or key.startswith(field + "."):
            return f"--set {override}"
    for key, override in overrides.items():
        section, _, leaf = key.rpartition(".")
        if section == field.rpartition(".")[0] and re.search(rf"\b{re.escape(leaf)} \(", rest):
            return f"--set {override}"
    return None


def check_override_fields(data: dict, overrides: dict[str, str], methods: Iterable[str] = ()) -> None:
    """Refuses a ``--set`` key that names no field, suggesting the closest one.

    Args:
        data: the preset with the overrides applied (its ``suite.name`` picks the suite's fields).
        overrides: dotted key -> the ``--set`` argument that gave it.
        methods: the run's methods, whose plugins' sections are fields too.

    Raises:
        ConfigError: ``--set ppo.kl_coeff=0.1: unknown field ppo.kl_coeff; did you mean ppo.kl_coef? ...``.
    """
    if not overrides:
        return
    suite = data.get("suite")
    suite_name = suite.get("name") if isinstance(suite, dict) else None
    try:
        known = [name for name, _, _ in config_fields(suite_name, methods)]
    except PluginError:
        raise
    except ValueError:  # an unknown suite name: reported by the build, with the file or --set that gave it
        return
    sections = {name.rsplit(".", 1)[0] for name in known}
    for key, override in overrides.items():
        if key in known or key in sections:
            continue
        hint = _closest(key, known)
        hint = f"; did you mean {hint}?" if hint else ""
        raise ConfigError(f"--set {override}: unknown field {key}{hint} (python -m harness.run --list-fields "
                          "lists them)")


def _closest(key: str, known: list[str]) -> str | None:
    """The known field a misspelt ``key`` most likely meant: the closest field name in its own section, or the
    closest dotted name when the section itself is misspelt."""
    section, _, leaf = key.rpartition(".")
    siblings = {name.rpartition(".")[2]: name for name in known if name.rpartition(".")[0] == section}
    if siblings:
        close = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
        return siblings[close[0]] if close else None
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return close[0] if close else None


def config_fields(suite_name: object, methods: Iterable[str] = ()) -> Iterator[tuple[str, Any,
                                                                                  dataclasses.Field | None]]:
    """Every field ``--set`` accepts, as (dotted name, type, dataclass field); ``suite.*`` for ``suite_name``, and
    the sections of the built-in methods and of the plugin ``methods``.

    Raises:
        ValueError: ``suite_name`` is not a registered suite.
    """
    suite_class = suite_config_class(suite_name)
    yield "suite.name", str, None
    yield from _walk(suite_class, "suite")
    for f in dataclasses.fields(RunConfig):
        if f.name not in ("preset", "suite", "options"):
            yield from _walk(typing.get_type_hints(RunConfig)[f.name], f.name)
    for section, cls in method_config_classes(methods).items():
        yield from _walk(cls, section)


def _walk(cls: type, prefix: str) -> Iterator[tuple[str, Any, dataclasses.Field]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _walk(hints[f.name], dotted(prefix, f.name))
        else:
            yield dotted(prefix, f.name), hints[f.name], f


def describe_fields(config: RunConfig, methods: Iterable[str] = ()) -> str:
    """One line per field ``--set`` accepts: dotted name, type, the value in ``config``, and its help; ``methods``:
    the plugin methods ``config`` was loaded with (their sections are listed too)."""
    values = config.to_dict()
    rows = []
    for name, tp, f in config_fields(config.suite.name, methods):
        value: Any = values
        for part in name.split("."):
            value = value[part]
        text = f.metadata.get("help", "") if f is not None else "The suite (the world or data set and its judge)."
        rows.append((name, _type_name(tp), repr(value), text))
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{n:<{width[0]}}  {t:<{width[1]}}  {v:<{width[2]}}  {h}".rstrip() for n, t, v, h in rows)


def _type_name(tp: Any) -> str:
    """``int``, ``float | None``, ``'hf' | 'vllm'``: a type as a user would write the value."""
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def _apply_override(data: dict, override: str) -> str:
    """Sets ``section.field=value`` in ``data``; returns the dotted key."""
    key, sep, raw = override.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {override!r}: expected section.field=value, e.g. ppo.kl_coef=0.05")
    try:
        value = _read_yaml(raw)
    except yaml.YAMLError:
        raise ConfigError(f"--set {override!r}: the value is not valid YAML") from None
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {override!r}: {part} is not a section")
    node[leaf] = value
    return key
