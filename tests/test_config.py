"""Presets load strictly: every shipped preset validates, and bad input names the field and what is allowed."""

from __future__ import annotations

import pytest

from harness.config import ConfigError, RunConfig, load_preset
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
        ("ppo.bogus=1", "ppo.bogus: unknown field"),
        ("ppo.kl_coef=high", "ppo.kl_coef: expected a number"),
        ("sft.batch_size=0", "batch_size"),
        ("generation.backend=tpu", "generation.backend: 'tpu' is not allowed; choose one of hf, vllm"),
        ("eval.greedy=3", "eval.greedy: expected true or false"),
        ("nosuchsection.x=1", "nosuchsection: unknown field"),
        ("ppo.kl_coef", "expected section.field=value"),
    ],
)
def test_bad_overrides_fail_with_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        load_preset(PRESETS["tiny"], [override])
    assert message in str(err.value) and "\n" not in str(err.value)


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
