"""Methods, suites and judges brought by other packages through entry points (harness.core.plugins).

Each test "installs" a plugin the way an installed package is seen, and no more: a ``*.dist-info`` directory with
its ``entry_points.txt`` on ``sys.path`` (importlib.metadata reads nothing else), beside the plugin's module. The
example package (examples/iterated_dpo) is installed so and run end to end next to PPO at the reduced budget.
"""

from __future__ import annotations

import itertools
import json
import typing
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from harness import check, registry
from harness.annotators import make_annotator
from harness.config import describe_fields, load_preset
from harness.core.errors import ConfigError
from harness.core.plugins import JUDGES_GROUP, METHODS_GROUP, SUITES_GROUP
from harness.leaderboard import known_methods, load_leaderboard
from harness.registry import METHODS, PRESETS, make_suite, method_config_classes, resolve_methods
from harness.run import build_parser, main
from methods.base import Method

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "iterated_dpo"
_unique = itertools.count()

# A method module's source: ``{name}`` and ``{section}`` filled in per plugin.
METHOD_SOURCE = '''
from dataclasses import dataclass, field


@dataclass
class Options:
    steps: int = field(default=3, metadata={{"help": "How many steps."}})


class Plugged:
    name = {name!r}
    config_section = {section!r}
    config_class = Options

    def train(self, ctx):
        raise NotImplementedError


class NoTrain:
    name = {name!r}
    config_section = None
    config_class = None


class NotADataclass(Plugged):
    config_class = dict
'''


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install({group: {name: "module:attr"}}, module_source=None)``: a distribution declaring those entry points
    on ``sys.path`` (with ``module_source`` as its module, whose name replaces ``{module}`` in the values); returns
    the distribution's name and the module's name."""

    def installer(entry_points: dict[str, dict[str, str]], module_source: str | None = None) -> tuple[str, str]:
        index = next(_unique)
        dist, module = f"plugin-{index}", f"rlp_test_plugin_{index}"
        site = tmp_path / f"site{index}"
        info = site / f"{dist}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{name} = {value.format(module=module)}\n" for name, value in names.items())
            for group, names in entry_points.items()))
        if module_source is not None:
            (site / f"{module}.py").write_text(module_source)
        monkeypatch.syspath_prepend(str(site))
        return f"{dist} 0.1", module

    return installer


def install_example(install) -> str:
    """The example package's entry point, as its pyproject.toml declares it (its code imports from its source dir,
    which pytest's pythonpath holds)."""
    return install({METHODS_GROUP: {"iterated_dpo": "rlp_iterated_dpo:IteratedDPO"}})[0]


def test_the_registry_checks_the_members_the_method_protocol_declares():
    declared = {*typing.get_type_hints(Method), *(name for name, value in vars(Method).items()
                                                  if callable(value) and not name.startswith("_"))}
    assert set(registry.METHOD_MEMBERS) == declared


def test_a_plugin_method_is_found_by_name_and_all_stays_the_built_in_methods(install):
    assert "iterated_dpo" not in known_methods()
    install_example(install)
    assert resolve_methods(["ppo", "iterated_dpo"]) == ["ppo", "iterated_dpo"]
    assert resolve_methods(["all"]) == list(METHODS)
    assert resolve_methods(["all", "iterated_dpo"]) == [*METHODS, "iterated_dpo"]
    assert "iterated_dpo" in known_methods()  # the stored leaderboards and the check accept it
    help_text = build_parser().format_help()
    assert "plugin methods: iterated_dpo (name them: 'all' is the built-in ones)" in help_text


def test_a_plugin_methods_section_enters_the_config_and_the_fields_only_when_it_is_named(install, capsys):
    install_example(install)
    config = load_preset(PRESETS["tiny"], ["iterated_dpo.rounds=3"], ["iterated_dpo"])
    assert config.options["iterated_dpo"].rounds == 3 and config.to_dict()["iterated_dpo"]["n"] == 4
    assert load_preset(EXAMPLE / "tiny-iterated-dpo.yaml", [], ["iterated_dpo"]).options["iterated_dpo"].rounds == 2

    plain = load_preset(PRESETS["tiny"])
    assert "iterated_dpo" not in plain.options  # installed is not asked for: the run's config is as without it
    with pytest.raises(ConfigError, match=r"^--set iterated_dpo.rounds=3: unknown field iterated_dpo.rounds"):
        load_preset(PRESETS["tiny"], ["iterated_dpo.rounds=3"])

    assert main(["--list-fields"]) == 0
    without = capsys.readouterr().out
    assert main(["--list-fields", "--methods", "iterated_dpo"]) == 0
    listed = capsys.readouterr().out
    added = set(listed.splitlines()) - set(without.splitlines())
    assert {line.split()[0] for line in added} == {f"iterated_dpo.{name}" for name in (
        "rounds", "n", "temperature", "beta", "learning_rate", "epochs", "batch_size", "max_length")}
    assert set(without.splitlines()) <= set(listed.splitlines())
    assert describe_fields(plain) in without


def test_a_name_both_built_in_and_brought_by_a_plugin_is_one_line_naming_both(install):
    dist, module = install({METHODS_GROUP: {"ppo": "{module}:Plugged"}}, METHOD_SOURCE.format(name="ppo",
                                                                                             section="ppo2"))
    with pytest.raises(ConfigError) as err:
        resolve_methods(["ppo"])
    assert str(err.value) == (f"--methods: method 'ppo' is defined twice: by the harness (methods.ppo:PPO) and by "
                              f"plugin {dist} (entry point rlp_harness.methods: ppo = {module}:Plugged); rename "
                              "the plugin's entry point")
    assert resolve_methods(["sft"]) == ["sft"]  # only the clashing name is refused


BROKEN = [
    ("import error", "{module}:Plugged", "import rlp_no_such_module_anywhere\n",
     "cannot be loaded: ModuleNotFoundError: No module named 'rlp_no_such_module_anywhere'"),
    ("missing class", "{module}:Missing", METHOD_SOURCE,
     "cannot be loaded: AttributeError: module '{module}' has no attribute 'Missing'"),
    ("no train", "{module}:NoTrain", METHOD_SOURCE,
     "not a method (methods.base.Method): it has no train"),
    ("options not a dataclass", "{module}:NotADataclass", METHOD_SOURCE,
     "not a method (methods.base.Method): its config_class <class 'dict'> is not a dataclass"),
    ("another name", "{module}:Plugged", METHOD_SOURCE.replace("name = {name!r}", "name = 'other'", 1),
     "not a method (methods.base.Method): its name is 'other', not its entry point's name 'broken'"),
    ("not a class", "{module}:Options.__init__", METHOD_SOURCE, "is not a class"),
]


@pytest.mark.parametrize("value, source, problem", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_a_broken_plugin_is_one_line_naming_it_only_when_its_method_is_asked_for(install, capsys, value, source,
                                                                                 problem):
    dist, module = install({METHODS_GROUP: {"broken": value}}, source.format(name="broken", section="broken"))
    assert resolve_methods(["all"]) == list(METHODS)  # runs that do not name it: as if it were not there
    assert load_preset(PRESETS["tiny"], [], ["ppo"]).options.keys() == load_preset(PRESETS["tiny"]).options.keys()

    with pytest.raises(SystemExit) as exit_:
        main(["--methods", "ppo", "broken", "--out", "never-written"])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"harness.run: error: --methods: method 'broken' from plugin {dist} (entry point "
                           f"rlp_harness.methods: broken = {value.format(module=module)}): ")
    assert problem.format(module=module) in line
    assert not Path("never-written").exists()


@pytest.mark.parametrize("section, owner", [("ppo", "the run-wide section"), ("dpo", "method 'dpo'")])
def test_a_plugin_section_that_is_taken_already_is_refused_naming_the_plugin(install, section, owner):
    dist, module = install({METHODS_GROUP: {"mine": "{module}:Plugged"}}, METHOD_SOURCE.format(name="mine",
                                                                                              section=section))
    with pytest.raises(ConfigError) as err:
        load_preset(PRESETS["tiny"], [], ["mine"])
    assert str(err.value) == (f"method 'mine' from plugin {dist} (entry point rlp_harness.methods: mine = "
                              f"{module}:Plugged): its config_section {section!r} is also {owner}'s; allowed: a "
                              "section of its own")
    assert "mine" not in method_config_classes()


SUITE_SOURCE = '''
from harness.suites.tiny import TinySuite, TinyWorldConfig


class TinyCopy(TinySuite):
    config_class = TinyWorldConfig


class NotASuite:
    config_class = TinyWorldConfig
'''


def test_a_plugin_suite_is_named_by_a_preset_and_built_with_its_own_options(install):
    _, module = install({SUITES_GROUP: {"tiny_copy": "{module}:TinyCopy"}}, SUITE_SOURCE)
    config = load_preset(PRESETS["tiny"], ["suite.name=tiny_copy", "suite.sft_size=7"])
    assert config.suite.name == "tiny_copy" and config.suite.options.sft_size == 7
    suite = make_suite(config.suite.name, config.suite.options)
    assert type(suite).__name__ == "TinyCopy" and suite.config is config.suite.options
    with pytest.raises(ConfigError, match=r"suite.name: got 'nosuch'; allowed: 'tiny', 'verifiable', "
                                          r"'alpacafarm', 'tiny_copy'"):
        load_preset(PRESETS["tiny"], ["suite.name=nosuch"])


def test_a_broken_or_clashing_plugin_suite_breaks_only_the_presets_that_name_it(install):
    dist, module = install({SUITES_GROUP: {"tiny": "{module}:TinyCopy", "odd": "{module}:NotASuite"}}, SUITE_SOURCE)
    with pytest.raises(ConfigError, match=rf"^suite 'tiny' is defined twice: by the harness "
                                          rf"\(harness.suites.tiny:TinySuite\) and by plugin {dist} "):
        load_preset(PRESETS["tiny"])
    with pytest.raises(ConfigError, match=rf"^suite 'odd' from plugin {dist} .*: not a suite "
                                          r"\(harness.suites.base.Suite\): it has no splits, training_annotator"):
        load_preset(PRESETS["tiny"], ["suite.name=odd"])
    assert load_preset(PRESETS["smollm2"]).suite.name == "verifiable"


JUDGE_SOURCE = '''
class Shortest:
    name = "shortest"

    def __init__(self, suite):
        self.suite = suite

    def annotate(self, instructions, outputs_1, outputs_2):
        return [1.0 if len(a) <= len(b) else 2.0 for a, b in zip(outputs_1, outputs_2)]


def not_a_judge(suite):
    return "no"
'''


def test_a_plugin_judge_is_made_for_the_suite_and_a_clash_or_a_bad_one_names_the_plugin(install):
    dist, module = install({JUDGES_GROUP: {"shortest": "{module}:Shortest", "gold": "{module}:Shortest",
                                           "bad": "{module}:not_a_judge"}}, JUDGE_SOURCE)
    suite = SimpleNamespace(gold_annotator=lambda: "gold")
    judge = make_annotator("shortest", suite)
    assert judge.suite is suite and judge.annotate(["q"], ["ab"], ["a"]) == [2.0]
    with pytest.raises(ConfigError) as err:
        make_annotator("gold", suite)
    assert str(err.value) == (f"eval.judge: judge 'gold' is defined twice: by the harness (the suite's gold judge) "
                              f"and by plugin {dist} (entry point rlp_harness.judges: gold = {module}:Shortest); "
                              "rename the plugin's entry point")
    with pytest.raises(ConfigError, match=rf"^suite.gold_judge: judge 'bad' from plugin {dist} .*: called with the "
                                          r"suite it returned 'no', not an annotator"):
        make_annotator("bad", suite, field="suite.gold_judge")
    with pytest.raises(ConfigError, match=r"or a plugin judge \(bad, gold, shortest\)$"):
        make_annotator("nosuch", suite)


# The reduced budget of iterated DPO: 2 rounds of 2 samples per unlabeled instruction.
ITERATED_DPO_SMOKE = ["--set", "iterated_dpo.rounds=2", "--set", "iterated_dpo.n=2", "--set",
                      "iterated_dpo.batch_size=8"]


def test_the_example_plugin_runs_end_to_end_next_to_ppo_and_enters_the_leaderboard_and_the_check(
        install, tmp_path, smoke_command, capsys):
    install_example(install)
    out, boards = tmp_path / "run", tmp_path / "leaderboards"
    command = [*smoke_command(out, ["ppo", "iterated_dpo"]), *ITERATED_DPO_SMOKE,
               "--preset", str(EXAMPLE / "tiny-iterated-dpo.yaml"), "--update-leaderboard", "--leaderboards",
               str(boards)]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert any(line.startswith("iterated_dpo") for line in printed.splitlines())  # the console table's row

    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"]) == ["ppo", "iterated_dpo"]
    metrics = results["methods"]["iterated_dpo"]["metrics"]
    assert 0 <= metrics["farm_win_rate"]["mean"] <= 100
    [diagnostics] = json.loads((out / "diagnostics.json").read_text())["iterated_dpo"]
    assert diagnostics["round_1_pairs"] > 0 and diagnostics["round_2_pairs"] > 0
    stages = {stage["stage"] for stage in results["stages"]}
    assert {"iterated_dpo", "iterated_dpo_samples"} <= stages
    assert "iterated_dpo:" in (out / "config.yaml").read_text()
    assert "iterated_dpo" in (out / "report.md").read_text()
    assert "iterated_dpo" in set(pd.read_csv(out / "leaderboard.csv")["method"])

    leaderboard = load_leaderboard("tiny-iterated-dpo", boards)
    assert leaderboard.methods == ["ppo", "iterated_dpo"]
    assert check.main(["--run", str(out), "--leaderboards", str(boards)]) == 0
