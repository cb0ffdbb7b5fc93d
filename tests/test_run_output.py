"""What a minimal run prints, logs and writes for its users: a quiet console, run.log, tracker files, strict
results.json and alpaca_eval-format outputs.

One real run (PPO and RLP-SPG at the reduced budget, with TensorBoard tracking) in a subprocess, as a user starts it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


# The project's progress bars, each labelled with what it does.
LABELLED_BARS = ("pretraining tiny base model", "sft", "reward", "ppo", "eval_farm", "eval_bar", "drift_samples",
                 "policy_samples")
THIRD_PARTY = ("Warning", "warnings.warn", "{'", "LOAD REPORT", "`pretrained`", "Loading weights", "Map:",
               "Writing model shards", "Tokenizing", "loglikelihood", "\x1b[")


@pytest.fixture(scope="module")
def minimal_run(tmp_path_factory, reduced_budget):
    out = tmp_path_factory.mktemp("output") / "run"
    command = [sys.executable, "-m", "harness.run", "--methods", "ppo", "rlp_spg", "--out", str(out),
               "--report-to", "tensorboard", *reduced_budget]
    done = subprocess.run(command, capture_output=True, timeout=600)  # bytes: text mode would turn \r into \n
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr[-3000:]
    return out, stdout, stderr


def _lines(text: str) -> list[str]:
    """Console lines as a terminal shows them: a progress bar redraws its line after each carriage return."""
    return [line.split("\r")[-1].strip() for line in text.split("\n") if line.split("\r")[-1].strip()]


def test_the_console_shows_stage_lines_labelled_bars_and_the_table_only(minimal_run):
    out, stdout, stderr = minimal_run
    stage_lines = [line for line in _lines(stdout) if re.match(r"\[\d\d:\d\d:\d\d\] ", line)]
    table = stdout[stdout.index("\nmethod ") + 1:].splitlines()
    # a parallel job's bars carry its label, "[job k] "
    bars = [line for line in _lines(stderr) if re.sub(r"^\[job \d+\] ", "", line).split(":")[0] in LABELLED_BARS]
    everything = _lines(stdout) + _lines(stderr)
    assert len(everything) == len(stage_lines) + len([t for t in table if t.strip()]) + len(bars), \
        "\n".join(line for line in everything if line not in stage_lines + table + bars)
    # two methods' rows under the header, the footnote on the intervals (8 lines) and each paired comparison
    assert len(table) <= 16 and len(bars) <= 12
    assert not [line for line in everything if any(marker in line for marker in THIRD_PARTY)]


def test_run_log_keeps_what_the_console_leaves_out_without_escape_codes(minimal_run):
    out, _, _ = minimal_run
    log = (out / "run.log").read_text()
    assert "FutureWarning" in log and "LOAD REPORT" in log and "`pretrained` model kwarg" in log
    assert re.search(r"harness\.training INFO: sft step \d+: \{\"train_runtime\"", log)
    assert "\x1b" not in log


def test_results_json_is_strict_json(minimal_run):
    out, _, _ = minimal_run

    def refuse(constant):
        raise ValueError(f"bare {constant} in results.json")

    results = json.loads((out / "results.json").read_text(), parse_constant=refuse)
    json.loads((out / "diagnostics.json").read_text(), parse_constant=refuse)
    # one seed: no interval over seeds, written as null
    assert results["methods"]["ppo"]["metrics"]["farm_win_rate"]["ci95"] is None


def test_outputs_are_where_alpaca_eval_users_look_and_its_loader_reads_them(minimal_run):
    from alpaca_eval.metrics import pairwise_to_winrate
    from alpaca_eval.utils import load_or_convert_to_dataframe

    out, _, _ = minimal_run
    results = json.loads((out / "results.json").read_text())
    for method in ("ppo", "rlp_spg"):
        for eval_set in ("farm", "bar"):
            folder = out / "outputs" / method / eval_set
            outputs = load_or_convert_to_dataframe(folder / "model_outputs.json")
            annotations = load_or_convert_to_dataframe(folder / "annotations.json")
            assert set(outputs["generator"]) == {method} and set(outputs["dataset"]) == {eval_set}
            assert list(outputs["instruction"]) == list(annotations["instruction"])
            assert len(load_or_convert_to_dataframe(folder / "reference_outputs.json")) == len(outputs)
            # alpaca_eval's own metric on the exported annotations gives the win rate the run reported
            win_rate = pairwise_to_winrate(annotations["preference"].tolist())["win_rate"]
            assert win_rate == pytest.approx(results["methods"][method]["metrics"][f"{eval_set}_win_rate"]["mean"])


def test_tensorboard_has_every_trained_stage_with_ppo_statistics_per_step(minimal_run, stage_cache):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, _ = minimal_run
    runs = {p.parent.name: p.parent for p in (out / "tracking").glob("*/events.out.tfevents.*")}
    # one run per trained stage, named like its stage dir
    assert {name.split("-")[0] for name in runs} == {"sft", "reward", "ppo"}
    assert all((stage_cache / name).is_dir() for name in runs), runs
    (ppo_run,) = [path for name, path in runs.items() if name.startswith("ppo-")]
    scalars = EventAccumulator(str(ppo_run)).Reload().Tags()["scalars"]
    for tag in ("ppo/proxy_reward", "ppo/kl", "ppo/truncated", "ppo/policy_loss", "ppo/value_loss"):
        assert tag in scalars, scalars
    sft_scalars = EventAccumulator(str(runs[next(n for n in runs if n.startswith("sft-"))])).Reload().Tags()
    assert "train/train_loss" in sft_scalars["scalars"], sft_scalars
    steps = [e.step for e in EventAccumulator(str(ppo_run)).Reload().Scalars("ppo/kl")]
    assert steps == [1, 2]  # ppo.num_steps=2 in the reduced budget


def test_help_answers_in_under_two_seconds():
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.run", "--help"], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[1])
    assert time.perf_counter() - started < 2.0 and "--list-fields" in done.stdout


def test_list_fields_prints_every_field_and_exits_0():
    done = subprocess.run([sys.executable, "-m", "harness.run", "--list-fields", "--set", "ppo.kl_coef=0.5"],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("ppo.kl_coef "))
    assert row.split()[1:3] == ["float", "0.5"]


@pytest.mark.parametrize("verbose", [False, True])
def test_library_messages_reach_the_console_only_with_verbose(tmp_path, capfd, verbose):
    import logging
    import warnings

    from transformers.utils import logging as transformers_logging

    from harness.logs import library_output

    library_logger = logging.getLogger("transformers")
    before = (library_logger.handlers[:], library_logger.propagate, library_logger.level)
    with library_output(tmp_path / "run.log", verbose=verbose):
        transformers_logging.get_logger("transformers.modeling_utils").warning("\x1b[1mLOAD REPORT\x1b[0m")
        warnings.warn("`gradient_checkpointing` is deprecated", FutureWarning)
        logging.getLogger("harness.training").info("sft step 7: {'loss': 0.8}")
    err = capfd.readouterr().err
    log = (tmp_path / "run.log").read_text()
    for message in ("LOAD REPORT", "gradient_checkpointing", "sft step 7"):
        assert message in log
        assert (message in err) == verbose, err
    assert "\x1b" not in log
    # everything is put back as it was (an earlier test may have left transformers propagating: compare, don't assume)
    assert (library_logger.handlers, library_logger.propagate, library_logger.level) == before


def test_each_tracker_gets_the_stage_named_like_its_dir(monkeypatch, tmp_path):
    import os

    import harness.trainers.tracking as tracking

    building = tmp_path / ".tmp-ppo-0123456789abcdef-1a2b3c4d"  # the cache's temporary dir of ppo-0123456789abcdef
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)  # restored after the test
    monkeypatch.setattr(tracking, "_tracking", tracking.Tracking("none", None))
    assert tracking.trainer_reporting(building) == {"report_to": []} and tracking.accelerator_reporting() == {}
    monkeypatch.setattr(tracking, "_tracking", tracking.Tracking("wandb", tmp_path / "tracking"))
    assert tracking.trainer_reporting(building) == {"report_to": ["wandb"], "run_name": "ppo-0123456789abcdef",
                                                    "project": "rlp-harness"}
    assert tracking.tracker_init(building) == {"project_name": "rlp-harness",
                                               "init_kwargs": {"wandb": {"name": "ppo-0123456789abcdef"}}}
    monkeypatch.setattr(tracking, "_tracking", tracking.Tracking("tensorboard", tmp_path / "tracking"))
    tracking.trainer_reporting(building)
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "tracking" / "ppo-0123456789abcdef")
    assert tracking.tracker_init(building) == {"project_name": "ppo-0123456789abcdef"}
    assert tracking.accelerator_reporting() == {"log_with": "tensorboard", "project_dir": str(tmp_path / "tracking")}
