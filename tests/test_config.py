"""Presets load strictly: every shipped preset validates, and bad input names the field and what is allowed."""

from __future__ import annotations

import pytest

from harness.config import RunConfig, load_preset
from harness.core.errors import ConfigError
from harness.registry import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_shipped_preset_loads(name):
    config = load_preset(PRESETS[name])
    assert isinstance(config, RunConfig) and config.preset == name
    assert PRESETS[name].read_text().startswith("# python -m harness.run"), "presets open with their command"


def test_overrides_reach_the_typed_config():
    config = load_preset(PRESETS["tiny"], ["ppo.kl_coef=0.25", "eval.greedy=true"])
    assert config.ppo.kl_coef == 0.25 and config.eval.greedy is True


@pytest.mark.parametrize(
    "override, message",
    [
        ("ppo.bogus=1", "--set ppo.bogus=1: unknown field ppo.bogus (python -m harness.run --list-fields lists them)"),
        ("ppo.kl_coeff=1", "--set ppo.kl_coeff=1: unknown field ppo.kl_coeff; did you mean ppo.kl_coef?"),
        ("suite.base_model.hiden_size=8", "did you mean suite.base_model.hidden_size?"),
        ("ppo.kl_coef=high", "--set ppo.kl_coef=high: ppo.kl_coef: expected a number"),
        ("sft.batch_size=0", "--set sft.batch_size=0: sft: batch_size: must be positive"),
        ("suite.sft_size=-1", "--set suite.sft_size=-1: suite: TinyWorldConfig.sft_size must be > 0"),
        ("generation.backend=tpu", "--set generation.backend=tpu: generation.backend: 'tpu' is not allowed; "
                                   "choose one of hf, vllm"),
        ("eval.greedy=3", "--set eval.greedy=3: eval.greedy: expected true or false"),
        ("nosuchsection.x=1", "--set nosuchsection.x=1: unknown field nosuchsection.x"),
        ("ppo.kl_coef", "expected section.field=value"),
    ],
)
def test_bad_overrides_fail_with_one_line_naming_set(override, message):
    with pytest.raises(ConfigError) as err:
        load_preset(PRESETS["tiny"], [override])
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "tiny.yaml" not in str(err.value), "an error in --set is not the preset file's"


def test_a_bad_preset_file_is_still_blamed_on_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(PRESETS["tiny"].read_text().replace("kl_coef:", "kl_coeff:"))
    with pytest.raises(ConfigError, match=r"mine\.yaml: ppo\.kl_coeff: unknown field"):
        load_preset(path, ["ppo.num_steps=3"])


def test_every_field_is_listed_with_type_value_and_help():
    from harness.config import describe_fields

    listing = describe_fields(load_preset(PRESETS["tiny"], ["ppo.kl_coef=0.25"])).splitlines()
    rows = {line.split()[0]: line for line in listing}
    assert len(rows) == len(listing), "one line per field"
    assert rows["ppo.kl_coef"].split()[1:3] == ["float", "0.25"] and "KL penalty" in rows["ppo.kl_coef"]
    assert "'hf' | 'vllm'" in rows["generation.backend"] and "int | None" in rows["runtime.torch_threads"]
    assert {"suite.sft_size", "suite.base_model.hidden_size", "eval.judge", "spg.gamma"} <= rows.keys()


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("preset: tiny\nsuite: {name: tiny\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line"):
        load_preset(path)


def test_yaml_is_never_evaluated_as_code(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("preset: !!python/object/apply:os.system ['echo pwned']\nsuite: {name: tiny}\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_preset(path)
