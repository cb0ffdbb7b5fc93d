"""Bad input, tried systematically: malformed command lines, preset files and user data files.

Every case goes through the command line's entry point and must end with exit status 2 and exactly one line on
stderr naming the flag or file, the field and what is allowed: no traceback, no training, nothing written. Cases are
grouped by who refuses them: the command line and the preset loader (before the run dir exists), and the pipeline
(the judge and the suite's data files, read once the run starts). Data files are a local mirror of the hub layout
for the ``alpacafarm`` preset, written in the hub schema by ``write_hub_mirror`` and then broken one way per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from harness.run import main
from harness.suites.alpacafarm.suite import SOURCES
from harness.suites.hub import mirror_path

REPO = Path(__file__).parent.parent
ERROR_PREFIX = "harness.run: error: "
SECTIONS = ("preset, suite, runtime, model, generation, sft, reward, ppo, policy_samples, eval, best_of_n, uml, spg, "
            "dpo, expert_iteration, grpo, online_rlhf, online_rlhf_gold")
JSON_FORMATS = "a JSON list of records or JSON Lines (one record per line)"
# A file that cannot be read even by root, who ignores permission bits: reading /proc/self/mem from its start fails
# with EIO, because no process maps address 0. A symlink to it stands in for an unreadable preset or data file.
UNREADABLE = Path("/proc/self/mem")
AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes whatever the permission bits say")
NEEDS_PROC = pytest.mark.skipif(not UNREADABLE.exists(), reason="needs Linux /proc")


class Case(NamedTuple):
    """One malformed input.

    Attributes:
        id: what is wrong, as the test id shows it.
        argv: writes whatever files the case needs under the scratch dir it is given, and returns the arguments.
        expected: substrings of the one error line; ``{tmp}`` stands for the scratch dir.
        marks: pytest marks, e.g. a skip where the case cannot be made.
    """

    id: str
    argv: Callable[[Path], list[str]]
    expected: tuple[str, ...]
    marks: tuple[pytest.MarkDecorator, ...] = ()


# ---------------------------------------------------------------------------------------------------------------
# How each kind of case writes its input


def fill(text: str, tmp: Path) -> str:
    """``text`` with ``{tmp}`` replaced by the scratch dir (not str.format: cases hold braces of their own)."""
    return text.replace("{tmp}", str(tmp))


def flags(*args: str) -> Callable[[Path], list[str]]:
    """A command line (``--methods sft`` first unless it says which methods); ``{tmp}`` is the scratch dir."""
    def make(tmp: Path) -> list[str]:
        argv = [fill(a, tmp) for a in args]
        return argv if "--methods" in argv else ["--methods", "sft", *argv]
    return make


def with_file(name: str, *args: str) -> Callable[[Path], list[str]]:
    """A command line whose flags point at a plain file ``tmp/name``, where a directory belongs."""
    def make(tmp: Path) -> list[str]:
        (tmp / name).write_text("x")
        return flags(*args)(tmp)
    return make


VALID_PRESET = "preset: custom\nsuite: {name: tiny}\n"


def preset(text: str | bytes, mode: int = 0o644) -> Callable[[Path], list[str]]:
    """``--preset tmp/preset.yaml`` holding ``text``, with permission bits ``mode``."""
    def make(tmp: Path) -> list[str]:
        path = tmp / "preset.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        path.chmod(mode)
        return ["--methods", "sft", "--preset", str(path)]
    return make


def preset_link(target: Path) -> Callable[[Path], list[str]]:
    """``--preset tmp/preset.yaml``, a symlink to ``target``."""
    def make(tmp: Path) -> list[str]:
        (tmp / "preset.yaml").symlink_to(target)
        return ["--methods", "sft", "--preset", str(tmp / "preset.yaml")]
    return make


def keep(root: Path) -> None:
    """Leaves the mirror as it is (the case breaks something else)."""


def data(edit: Callable[[Path], None], *sets: str) -> Callable[[Path], list[str]]:
    """The alpacafarm preset on the mirror ``tmp/mirror`` (:func:`prepare` writes it), broken by ``edit(root)``;
    ``sets`` are more --set values."""
    def make(tmp: Path) -> list[str]:
        root = tmp / "mirror"
        edit(root)
        overrides = [f"suite.data_dir={root}", "suite.val_size=2", *(fill(s, tmp) for s in sets)]
        return ["--methods", "sft", "--preset", "alpacafarm", *[a for o in overrides for a in ("--set", o)]]
    make.needs_mirror = True
    return make


def prepare(case: Case, tmp: Path, write_hub_mirror) -> list[str]:
    """The case's arguments, after writing the hub mirror at ``tmp/mirror`` for a case that breaks the data."""
    if getattr(case.argv, "needs_mirror", False):
        write_hub_mirror(tmp / "mirror")
    return case.argv(tmp)


def file_of(source: str, root: Path) -> Path:
    return mirror_path(SOURCES[source].file, root)


def records(source: str, change: Callable[[list[dict]], list[dict]]) -> Callable[[Path], None]:
    """Rewrites the mirror's ``source`` file with ``change(records)``."""
    def edit(root: Path) -> None:
        path = file_of(source, root)
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return edit


def content(source: str, text: str | bytes) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        file_of(source, root).write_bytes(text if isinstance(text, bytes) else text.encode())
    return edit


def delete(source: str) -> Callable[[Path], None]:
    return lambda root: file_of(source, root).unlink()


def link(source: str, target: Path) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        file_of(source, root).unlink()
        file_of(source, root).symlink_to(target)
    return edit


def mode(source: str, bits: int) -> Callable[[Path], None]:
    return lambda root: file_of(source, root).chmod(bits)


def references(text: str) -> Callable[[Path], None]:
    """Writes ``<mirror>/../references.json`` (bar references are a user file, not a hub one)."""
    return lambda root: (root.parent / "references.json").write_text(text)


def set_field(name: str, value: object, at: int = 4) -> Callable[[list[dict]], list[dict]]:
    return lambda rows: [{**row, name: value} if i == at else row for i, row in enumerate(rows)]


def copy_field(name: str, source: int, target: int) -> Callable[[list[dict]], list[dict]]:
    return lambda rows: set_field(name, rows[source][name], at=target)(rows)


def drop_field(name: str) -> Callable[[list[dict]], list[dict]]:
    return lambda rows: [{k: v for k, v in row.items() if k != name} for row in rows]


BAR_REFERENCES = "suite.bar_references={tmp}/references.json"
REFERENCE = '{{"instruction": "Bar instruction {i}", "output": "ref", "generator": "g"}}'
FIVE_REFERENCES = "[" + ", ".join(REFERENCE.format(i=i) for i in range(5)) + "]"
FARM = "{tmp}/mirror/tatsu-lab/alpaca_eval/alpaca_eval.json"
SFT = "{tmp}/mirror/tatsu-lab/alpaca_farm/alpaca_instructions/sft.json"


# ---------------------------------------------------------------------------------------------------------------
# The cases


COMMAND_LINES = [
    Case("--methods: empty name", flags("--methods", ""), ("--methods: unknown method ''", "choose from sft, ppo")),
    Case("--methods: wrong case", flags("--methods", "all", "PPO"), ("--methods: unknown method 'PPO'", "or all")),
    Case("--seeds: not an integer", flags("--seeds", "1.5"), ("argument --seeds: invalid int value: '1.5'",)),
    Case("--seeds: value missing", flags("--seeds"), ("argument --seeds: expected one argument",)),
    Case("an unknown flag", flags("--bogus"), ("unrecognized arguments: --bogus",)),
    Case("stray positional argument", flags("--seeds", "1", "extra"), ("unrecognized arguments: extra",)),
    Case("--set: value missing", flags("--set"), ("argument --set: expected one argument",)),
    Case("--set: no field", flags("--set", "=1"), ("--set '=1': expected section.field=value",)),
    Case("--set: empty field", flags("--set", "ppo.=1"), ("--set 'ppo.=1': expected section.field=value",)),
    Case("--set: empty section", flags("--set", ".kl_coef=1"), ("--set '.kl_coef=1': expected section.field=value",)),
    Case("--set: a list for a number", flags("--set", "ppo.kl_coef=[1, 2]"),
         ("--set ppo.kl_coef=[1, 2]: ppo.kl_coef: got [1, 2]; allowed: a number",)),
    Case("--set: invalid YAML value", flags("--set", "ppo.kl_coef={a: ["),
         ("ppo.kl_coef={a: [': the value is not valid",)),
    Case("--set: python tag", flags("--set", "ppo.kl_coef=!!python/object/apply:os.system [echo]"),
         ("--set 'ppo.kl_coef=!!python/object/apply:os.system [echo]': the value is not valid YAML",)),
    Case("--set: a number for a section", flags("--set", "ppo=3"), ("--set ppo=3: ppo: got 3; allowed: a mapping",)),
    Case("--set: a field inside a number", flags("--set", "ppo.kl_coef.x=1"),
         ("'ppo.kl_coef.x=1': kl_coef is not a section",)),
    Case("--set: nan", flags("--set", "ppo.kl_coef=.nan"),
         ("--set ppo.kl_coef=.nan: ppo.kl_coef: got nan; allowed: a finite number",)),
    Case("--set: infinite learning rate", flags("--set", "ppo.learning_rate=.inf"),
         ("--set ppo.learning_rate=.inf: ppo.learning_rate: got inf; allowed: a finite number",)),
    Case("--set: negative learning rate", flags("--set", "ppo.learning_rate=-1e-5"),
         ("--set ppo.learning_rate=-1e-5: ppo.learning_rate: got -1e-05; allowed: a number > 0",)),
    Case("--set: negative epochs", flags("--set", "sft.epochs=-1"),
         ("--set sft.epochs=-1: sft.epochs: got -1.0; allowed: a number > 0",)),
    Case("--set: zero rollout batch", flags("--set", "ppo.rollout_batch_size=0"),
         ("--set ppo.rollout_batch_size=0: ppo.rollout_batch_size: got 0; allowed: a number > 0",)),
    Case("--set: zero policy samples", flags("--set", "policy_samples.n=0"),
         ("--set policy_samples.n=0: policy_samples.n: got 0; allowed: a number > 0",)),
    Case("--set: zero torch threads", flags("--set", "runtime.torch_threads=0"),
         ("--set runtime.torch_threads=0: runtime.torch_threads: got 0; allowed: a number > 0 or null",)),
    Case("--set: unknown precision", flags("--set", "runtime.mixed_precision=fp8"),
         ("--set runtime.mixed_precision=fp8: runtime.mixed_precision: got 'fp8'; allowed: 'auto', 'no', 'bf16', "
          "'fp16'",)),
    Case("--set: fraction of steps", flags("--set", "ppo.num_steps=1.5"),
         ("--set ppo.num_steps=1.5: ppo.num_steps: got 1.5; allowed: an integer",)),
    Case("--set: boolean for a count", flags("--set", "eval.drift_instructions=true"),
         ("--set eval.drift_instructions=true: eval.drift_instructions: got True; allowed: an integer",)),
    Case("--set: best of zero", flags("--set", "best_of_n.n=0"),
         ("--set best_of_n.n=0: best_of_n.n: got 0; allowed: a number > 0",)),
    Case("--set: best-of-n curve not a power of 2", flags("--set", "eval.overoptimisation_max_n=48"),
         ("--set eval.overoptimisation_max_n=48: eval.overoptimisation_max_n: got 48; allowed: a power of 2",)),
    Case("--set: negative few-shot", flags("--set", "eval.knowledge_fewshot=-1"),
         ("--set eval.knowledge_fewshot=-1: eval.knowledge_fewshot: got -1; allowed: a number >= 0",)),
    Case("--set: zero eval examples", flags("--set", "eval.max_examples=0"),
         ("--set eval.max_examples=0: eval.max_examples: got 0; allowed: a number > 0 or null",)),
    Case("--set: unknown suite", flags("--set", "suite.name=nosuch"),
         ("--set suite.name=nosuch: suite.name: got 'nosuch'; allowed: 'tiny', 'verifiable', 'alpacafarm'",)),
    Case("--set: zero suite size", flags("--set", "suite.sft_size=0"),
         ("--set suite.sft_size=0: suite.sft_size: got 0; allowed: a number > 0",)),
    Case("--set: unknown suite option", flags("--set", "suite.sft_sise=10"),
         ("--set suite.sft_sise=10: unknown field suite.sft_sise; did you mean suite.sft_size?",)),
    Case("--preset: empty name", flags("--preset", ""), ("--preset: unknown preset ''", "or give a preset YAML file")),
    Case("--preset: a directory", flags("--preset", "{tmp}"),
         ("--preset: unknown preset '{tmp}'", "choose one of tiny")),
    Case("--out: a file", with_file("file", "--out", "{tmp}/file"), ("--out: {tmp}/file is not a writable directory",)),
    Case("--cache: under a file", with_file("file", "--cache", "{tmp}/file/stages"),
         ("--cache: {tmp}/file/stages is not a writable directory",)),
    Case("--leaderboards: a file", with_file("file", "--update-leaderboard", "--leaderboards", "{tmp}/file"),
         ("--leaderboards: {tmp}/file is not a writable directory",)),
    Case("--out: on a file system that refuses writes, even root's", flags("--out", "/proc/harness-run"),
         ("--out: /proc/harness-run is not a writable directory",), marks=(NEEDS_PROC,)),
]

PRESET_FILES = [
    Case("preset file: unknown section", preset(VALID_PRESET + "training: {}\n"),
         ("{tmp}/preset.yaml: training: unknown field; allowed: " + SECTIONS,)),
    Case("preset file: unknown key in a section", preset(VALID_PRESET + "ppo: {rollout_batch: 8}\n"),
         ("{tmp}/preset.yaml: ppo.rollout_batch: unknown field; allowed: rollout_batch_size",)),
    Case("preset file: text for a number", preset(VALID_PRESET + "sft: {learning_rate: fast}\n"),
         ("{tmp}/preset.yaml: sft.learning_rate: got 'fast'; allowed: a number",)),
    Case("preset file: quoted yes for a boolean", preset(VALID_PRESET + "eval: {greedy: 'yes'}\n"),
         ("{tmp}/preset.yaml: eval.greedy: got 'yes'; allowed: true or false",)),
    Case("preset file: a list for a section", preset(VALID_PRESET + "ppo: [1, 2]\n"),
         ("{tmp}/preset.yaml: ppo: got [1, 2]; allowed: a mapping",)),
    Case("preset file: an empty section", preset(VALID_PRESET + "ppo:\n"),
         ("{tmp}/preset.yaml: ppo: got None; allowed: a mapping",)),
    Case("preset file: negative PPO steps", preset(VALID_PRESET + "ppo: {num_steps: -5}\n"),
         ("{tmp}/preset.yaml: ppo.num_steps: got -5; allowed: a number > 0",)),
    Case("preset file: zero SFT epochs", preset(VALID_PRESET + "sft: {epochs: 0}\n"),
         ("{tmp}/preset.yaml: sft.epochs: got 0.0; allowed: a number > 0",)),
    Case("preset file: zero reward batch", preset(VALID_PRESET + "reward: {batch_size: 0}\n"),
         ("{tmp}/preset.yaml: reward.batch_size: got 0; allowed: a number > 0",)),
    Case("preset file: zero response length", preset(VALID_PRESET + "generation: {max_new_tokens: 0}\n"),
         ("{tmp}/preset.yaml: generation.max_new_tokens: got 0; allowed: a number > 0",)),
    Case("preset file: unknown backend", preset(VALID_PRESET + "generation: {backend: tpu}\n"),
         ("{tmp}/preset.yaml: generation.backend: got 'tpu'; allowed: 'hf', 'vllm'",)),
    Case("preset file: no preset name", preset("suite: {name: tiny}\n"),
         ("{tmp}/preset.yaml: preset: missing; allowed: a string",)),
    Case("preset file: no suite", preset("preset: custom\n"),
         ("{tmp}/preset.yaml: suite: missing; allowed: a mapping",)),
    Case("preset file: a number for the name", preset("preset: 3\nsuite: {name: tiny}\n"),
         ("{tmp}/preset.yaml: preset: got 3; allowed: a string",)),
    Case("preset file: a string for the suite", preset("preset: custom\nsuite: tiny\n"),
         ("{tmp}/preset.yaml: suite: got 'tiny'; allowed: a mapping: the suite's name and its options",)),
    Case("preset file: unknown suite option", preset("preset: custom\nsuite: {name: tiny, sft_sise: 10}\n"),
         ("{tmp}/preset.yaml: suite.sft_sise: unknown field; allowed: world_seed, sft_size",)),
    Case("preset file: unknown suite", preset("preset: custom\nsuite: {name: alpaca}\n"),
         ("{tmp}/preset.yaml: suite.name: got 'alpaca'; allowed: 'tiny', 'verifiable', 'alpacafarm'",)),
    Case("preset file: bad indentation", preset("preset: custom\nsuite:\n  name: tiny\n bad: 2\n"),
         ("{tmp}/preset.yaml: invalid YAML at line 4",)),
    Case("preset file: a tab as indentation", preset("preset: custom\nsuite:\n\tname: tiny\n"),
         ("{tmp}/preset.yaml: invalid YAML at line 3", "'\\t'")),
    Case("preset file: empty file", preset(""),
         ("{tmp}/preset.yaml: the file is empty; a preset is a mapping of sections (" + SECTIONS,)),
    Case("preset file: comments only", preset("# nothing here\n"), ("{tmp}/preset.yaml: the file is empty",)),
    Case("preset file: a list, not a mapping", preset("- preset: custom\n- suite: {name: tiny}\n"),
         ("{tmp}/preset.yaml: a preset must be a mapping of sections (preset, suite", "got list")),
    Case("preset file: a scalar, not a mapping", preset("just some text\n"),
         ("{tmp}/preset.yaml: a preset must be a mapping", "got str")),
    Case("preset file: python/name tag", preset("preset: !!python/name:os.system\nsuite: {name: tiny}\n"),
         ("{tmp}/preset.yaml: invalid YAML at line 1: could not determine a constructor for the tag "
          "'tag:yaml.org,2002:python/name:os.system'",)),
    Case("preset file: python/object/new tag", preset("preset: custom\nsuite: !!python/object/new:dict {}\n"),
         ("{tmp}/preset.yaml: invalid YAML at line 2", "python/object/new:dict")),
    Case("preset file: a section given twice", preset(VALID_PRESET + "ppo: {kl_coef: 0.1}\nppo: {num_steps: 5}\n"),
         ("{tmp}/preset.yaml: invalid YAML at line 4: key 'ppo' is given twice",)),
    Case("preset file: number and text keys", preset(VALID_PRESET + "1: a\nextra: b\n"),
         ("{tmp}/preset.yaml: 1: unknown field; allowed: " + SECTIONS,)),
    Case("preset file: not UTF-8", preset(b"\xff\xfe\x00preset: custom\n"),
         ("{tmp}/preset.yaml: not a text file; a preset is a YAML file in UTF-8",)),
    Case("preset file: unreadable", preset_link(UNREADABLE),
         ("{tmp}/preset.yaml: cannot read preset (Input/output error)",), marks=(NEEDS_PROC,)),
    Case("preset file: no read permission", preset(VALID_PRESET, mode=0o000),
         ("{tmp}/preset.yaml: cannot read preset (Permission denied)",), marks=(AS_ROOT,)),
]

# Refused once the run starts: the judge, and the suite's data (alpacafarm's, from a local mirror of the hub).
REFUSED_BY_THE_PIPELINE = [
    Case("--set: unknown judge", flags("--set", "eval.judge=nosuchjudge"),
         ("eval.judge: got 'nosuchjudge'; allowed: 'gold', 'local:<checkpoint dir or cached hub name>', or one "
          "of alpaca_eval's annotator configs",)),
    Case("data: missing split file", data(delete("unlabeled")),
         ("suite.data_dir: {tmp}/mirror/tatsu-lab/alpaca_farm/alpaca_instructions/unlabeled.json is missing",
          "copy this one there from https://huggingface.co/datasets/tatsu-lab/alpaca_farm")),
    Case("data: missing human preferences", data(delete("human"), "suite.preferences=human"),
         ("suite.data_dir: {tmp}/mirror/tatsu-lab/alpaca_farm/alpaca_human_preference.json is missing",)),
    Case("data: data_dir does not exist", flags("--preset", "alpacafarm", "--set", "suite.data_dir={tmp}/nowhere"),
         ("suite.data_dir: {tmp}/nowhere/tatsu-lab/alpaca_farm/alpaca_instructions/sft.json is missing",)),
    Case("data: eval set lacks a column", data(records("farm", drop_field("generator"))),
         (FARM + ": missing column(s) generator; it has dataset, instruction, output",)),
    Case("data: preferences lack their label", data(records("simulated", drop_field("preference"))),
         ("alpaca_noisy_multi_preference.json: missing column(s) preference",)),
    Case("data: empty file", data(content("sft", "")), (SFT + ": the file is empty; expected " + JSON_FORMATS,)),
    Case("data: no records", data(content("sft", "[]")), (SFT + ": holds no records; expected " + JSON_FORMATS,)),
    Case("data: invalid JSON", data(content("sft", '[{"instruction": "x", ')), (SFT + ": not " + JSON_FORMATS,)),
    Case("data: invalid JSON Lines", data(content("farm", '{"instruction": "x"}\n{"instruction": \n')),
         (FARM + ": not " + JSON_FORMATS, "in row 1")),
    Case("data: a number, not records", data(content("farm", "42")), (FARM + ": not " + JSON_FORMATS,)),
    Case("data: not UTF-8", data(content("farm", b"\xff\xfe\x00\x01")), (FARM + ": not " + JSON_FORMATS,)),
    Case("data: a column of mixed types", data(records("sft", set_field("output", [1, 2]))),
         (SFT + ": column 'output' mixes value types (list, str); every value of a column must have the same type",)),
    Case("data: non-text outputs", data(records("sft", lambda rows: [{**r, "output": 5} for r in rows])),
         ("split 'sft': column 'output' must hold text",)),
    Case("data: preference label 3", data(records("simulated", set_field("preference", 3))),
         ("alpaca_noisy_multi_preference.json): preference must be 1 or 2, found [1, 2, 3]",)),
    Case("data: eval set with a repeated instruction", data(records("farm", copy_field("instruction", 5, 4))),
         ("dataset tatsu-lab/alpaca_eval (alpaca_eval.json): instruction 'Eval question 5?' appears more than once",
          "each evaluation instruction must be unique")),
    Case("data: eval set with an empty instruction", data(records("farm", set_field("instruction", "  "))),
         ("dataset tatsu-lab/alpaca_eval (alpaca_eval.json): instruction 4 is empty; every instruction must be "
          "non-empty text",)),
    Case("data: LLMBar with a repeated instruction", data(records("bar", copy_field("input", 0, 1))),
         ("princeton-nlp/LLMBar (Dataset/LLMBar/Natural/dataset.json): column 'input': instruction 'Bar instruction 0' "
          "appears more than once",)),
    Case("data: bar references missing", data(keep, BAR_REFERENCES),
         ("suite.bar_references: {tmp}/references.json is not a file (nor 'llmbar_preferred')",)),
    Case("data: bar references not JSON", data(references("[{oops"), BAR_REFERENCES),
         ("suite.bar_references {tmp}/references.json: not " + JSON_FORMATS,)),
    Case("data: bar references lack a column", data(references('[{"instruction": "Bar instruction 0"}]'),
                                                    BAR_REFERENCES),
         ("suite.bar_references {tmp}/references.json: missing column(s) output, generator",)),
    Case("data: bar references repeat an instruction",
         data(references(FIVE_REFERENCES[:-1] + ", " + REFERENCE.format(i=0) + "]"), BAR_REFERENCES),
         ("suite.bar_references: {tmp}/references.json: instruction 'Bar instruction 0' appears more than once",)),
    Case("data: unreadable file", data(link("sft", UNREADABLE)),
         (SFT + ": cannot read the file (Input/output error)",), marks=(NEEDS_PROC,)),
    Case("data: no read permission", data(mode("sft", 0o000)),
         (SFT + ": cannot read the file (Permission denied)",), marks=(AS_ROOT,)),
]


def params(cases: list[Case], *marks: pytest.MarkDecorator) -> list:
    return [pytest.param(case, marks=[*case.marks, *marks], id=case.id) for case in cases]


ALL_CASES = [*params(COMMAND_LINES), *params(PRESET_FILES), *params(REFUSED_BY_THE_PIPELINE)]
BY_ID = {case.id: case for case in [*COMMAND_LINES, *PRESET_FILES, *REFUSED_BY_THE_PIPELINE]}


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    """alpacafarm's judge wants its API key before the data is read; a fake one lets the data cases get there."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")


def run_main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_info:  # refused while parsing; later refusals are main's return value
        return exit_info.code


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of everything under ``root`` (of symlinks themselves, not of their targets)."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def assert_refused(code: int, stderr: str, expected: tuple[str, ...], tmp: Path) -> None:
    assert code == 2
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr  # no traceback, no progress bar, no library's log line
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    for part in expected:
        assert fill(part, tmp) in lines[0], lines[0]


@pytest.fixture(autouse=True)
def model_cache_in_tmp(tmp_path, monkeypatch):
    """Base models go to a cache under the test's tmp dir, where :func:`assert_nothing_written` looks."""
    monkeypatch.setenv("RLP_HARNESS_CACHE", str(tmp_path / "harness-cache"))


def assert_nothing_written(tmp: Path, before: dict[str, tuple[int, int]]) -> None:
    assert not [p for p in tmp.rglob("*") if p.parent.name == "stages" or p.name == "harness-cache"], \
        "training started"
    changed = sorted(set(snapshot(tmp).items()) ^ set(before.items()))
    if changed:
        raise AssertionError(f"written for bad input: {changed}")


def with_out(argv: list[str], out: Path) -> list[str]:
    return argv if "--out" in argv else [*argv, "--out", str(out)]


@pytest.mark.parametrize("case", ALL_CASES)
def test_bad_input_ends_with_one_line_and_writes_nothing(case, tmp_path, capfd, write_hub_mirror):
    argv = with_out(prepare(case, tmp_path, write_hub_mirror), tmp_path / "out" / "run")
    before = snapshot(tmp_path)
    code = run_main(argv)
    # capfd, not capsys: library loggers keep the stderr they started with, which only the file descriptor shows.
    assert_refused(code, capfd.readouterr().err, case.expected, tmp_path)
    assert_nothing_written(tmp_path, before)


@pytest.mark.parametrize("case", [
    pytest.param(BY_ID["preset file: unknown key in a section"], id="preset file"),
    pytest.param(BY_ID["data: eval set with a repeated instruction"], id="data file"),
])
def test_a_finished_run_dir_is_left_as_it_was(case, tmp_path, capfd, write_hub_mirror):
    out = tmp_path / "out" / "run"
    out.mkdir(parents=True)
    finished = {"results.json": '{"preset": "tiny", "methods": {"sft": {}}}\n', "config.yaml": "preset: tiny\n",
                "leaderboard.csv": "method\nsft\n", "run.log": "[00:00:00] run finished\n", ".harness-run": "{}\n"}
    for name, text in finished.items():
        (out / name).write_text(text)
    # --overwrite: the finished run is of another command, so without it the run is refused before the input is read
    argv = [*prepare(case, tmp_path, write_hub_mirror), "--out", str(out), "--overwrite"]
    before = snapshot(tmp_path)
    assert_refused(run_main(argv), capfd.readouterr().err, case.expected, tmp_path)
    assert (out / "results.json").read_text() == finished["results.json"]
    assert_nothing_written(tmp_path, before)  # sizes and mtimes of every file, results.json's included


def test_a_float_written_without_a_dot_is_a_number():
    """PyYAML (YAML 1.1) reads 1e-5 as text; the loader reads it as Python does, so the case above that gives
    -1e-5 is refused for its sign alone, and 1e-5 is accepted."""
    from harness.config import load_preset
    from harness.registry import PRESETS

    config = load_preset(PRESETS["tiny"], ["ppo.learning_rate=1e-5", "sft.learning_rate=2E-4"])
    assert (config.ppo.learning_rate, config.sft.learning_rate) == (1e-5, 2e-4)


SUBPROCESS_CASES = ["an unknown flag", "preset file: not UTF-8", "data: invalid JSON"]


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path, write_hub_mirror):
    """What the interpreter prints on its own (warnings at import, a traceback) only a real process shows.

    The processes run side by side: each spends most of its few seconds importing torch and the libraries.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # and the fake key of api_key()
    started = []
    for i, case_id in enumerate(SUBPROCESS_CASES):
        scratch = tmp_path / str(i)
        scratch.mkdir()
        argv = with_out(prepare(BY_ID[case_id], scratch, write_hub_mirror), scratch / "out" / "run")
        started.append((BY_ID[case_id], scratch, subprocess.Popen(
            [sys.executable, "-m", "harness.run", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, cwd=REPO)))
    for case, scratch, process in started:
        stdout, stderr = process.communicate(timeout=300)
        assert "Traceback" not in stderr, stderr
        assert_refused(process.returncode, stderr, case.expected, scratch)
        assert stdout == ""
