"""The whole pipeline at a minimal budget: every method trains, reruns reuse every stage, a killed run resumes.

The budget is shrunk through the same `--set` overrides a user has, so this exercises the real code path
(base-model pretraining, TRL SFT and reward training, our PPO, RLP sampling, lm-eval, reports) in about a minute.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.leaderboard import LEADERBOARD_COLUMNS, ranked_methods
from harness.run import main
from harness.suites.tiny import world
from harness.trainers.scoring import RewardModelScorer

# PPO long enough, and with a step large enough, to learn at this budget what the reward model rewards most
# plainly: answers that end (a cut-off answer scores the truncation penalty, -1); checkpoints at steps 4 and 8, in
# the over-optimisation curve's own PPO too.
# Raw scores, with the KL coefficient the preset had for them: at this budget 88% of rollouts are cut off, and PPO's
# gain is mostly in finishing them, which the fixed truncation penalty (-1) rewards far more than the reward model's
# spread (about 0.01) would once standardised.
PPO_THAT_LEARNS = [a for o in ("ppo.num_steps=8", "ppo.learning_rate=1e-2", "ppo.save_every=4",
                               "eval.overoptimisation_ppo_steps=8", "ppo.reward_normalization_samples=0",
                               "ppo.kl_coef=0.1")
                   for a in ("--set", o)]


@pytest.fixture(scope="module")
def command(smoke_command):
    """``command(out)``: the whole run at the minimal budget, with PPO_THAT_LEARNS, in this process alone (the
    network and the API key are watched here; tests/test_jobs.py runs the parallel jobs)."""
    return lambda out: [*smoke_command(out), *PPO_THAT_LEARNS, "--jobs", "1"]

FAKE_KEY = "sk-test-0123456789abcdef-never-log-me"
NETWORK_ATTEMPTS: list = []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, command):
    """One full run with every internet socket refused and a fake API key in the environment."""
    out = tmp_path_factory.mktemp("e2e") / "run"
    patch = pytest.MonkeyPatch()
    patch.setenv("OPENAI_API_KEY", FAKE_KEY)
    real_connect = socket.socket.connect

    def refuse_internet(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            NETWORK_ATTEMPTS.append(address)
            raise OSError(f"network disabled in this test: {address}")
        return real_connect(sock, address)

    patch.setattr(socket.socket, "connect", refuse_internet)
    patch.setattr(socket, "create_connection", lambda address, *a, **k: refuse_internet(
        socket.socket(socket.AF_INET), address))
    try:
        assert main(command(out)) == 0
    finally:
        patch.undo()
    return out


def test_an_in_process_run_leaves_the_garbage_collector_as_it_found_it(finished_run):
    # main() freezes the imported heap for the run's speed; a notebook or test calling it must not keep that
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_the_default_run_never_opens_a_network_connection(finished_run):
    assert NETWORK_ATTEMPTS == []


def test_no_file_of_the_run_contains_the_api_key(finished_run, stage_cache):
    written = [*finished_run.rglob("*"), *stage_cache.rglob("*")]  # the run dir and the stages the run built
    assert [p for p in written if p.is_file() and FAKE_KEY.encode() in p.read_bytes()] == []


def test_every_method_is_trained_evaluated_and_reported(finished_run, stage_cache):
    results = json.loads((finished_run / "results.json").read_text())
    assert list(results["methods"]) == ["sft", "ppo", "best_of_n", "rlp_uml", "rlp_spg", "dpo", "expert_iteration",
                                        "grpo", "online_rlhf", "online_rlhf_gold"]
    table = pd.read_csv(finished_run / "leaderboard.csv")
    assert list(table.columns) == LEADERBOARD_COLUMNS and list(table["method"]) == ranked_methods(results["methods"])
    # every method judged against PPO and SFT on each evaluation set, from the run's own verdicts
    pairs = {(c["method"], c["baseline"], c["eval_set"]) for c in results["comparisons"]}
    assert {(m, "ppo", "farm") for m in results["methods"] if m not in ("ppo", "sft")} <= pairs
    assert ("ppo", "sft", "farm") in pairs and all(c["verdict"] != "unmeasured" for c in results["comparisons"])
    for method, entry in results["methods"].items():
        metrics = entry["metrics"]
        assert 0 <= metrics["farm_win_rate"]["mean"] <= 100
        assert 0 <= metrics["knowledge_acc"]["mean"] <= 1
        assert_offline_accuracy_measured(stage_cache, results, metrics["rm_acc_offline"]["mean"])
        if method in ("dpo", "expert_iteration"):  # trained, but no RL run whose drift to follow
            assert "drift" not in entry["per_seed"][0]["details"] and metrics["train_wall_s"]["mean"] > 0, method
            assert metrics["kl"]["mean"] is None, method  # not measured (null), rather than a 0 it is not
        elif method not in ("sft", "best_of_n"):
            # one drift point for the SFT start and one per saved checkpoint: PPO's (save_every=4, 8 steps), GRPO's
            # (save_every=1, 2 steps)
            curve = entry["per_seed"][0]["details"]["drift"]["curve"]
            assert [point["step"] for point in curve] == ([0, 1, 2] if method == "grpo" else [0, 4, 8]), method
            assert set(curve[0]["by_kind"]) <= set(world.PAIR_KINDS) - {world.EQUAL_QUALITY}, method
            assert metrics["kl"]["mean"] != 0, method
            assert "rm_acc_step0" in metrics and "step0_accuracy" in entry["per_seed"][0]["details"]["drift"]
            # the length rule on the same judged pairs, at every point and on the val pairs
            assert all(point["prefer_shorter"]["n"] == point["n"] for point in curve), method
            val = entry["per_seed"][0]["details"]["val_pairs"]
            assert val["prefer_shorter"]["n"] == val["reward_model"]["n"], method  # the same gold-ranked pairs
            assert val["prefer_shorter"]["n"] + val["prefer_shorter"]["n_annotator_ties"] == 24, method
        if method in ("rlp_uml", "rlp_spg", "online_rlhf", "online_rlhf_gold"):
            # the mechanism check: the original and the refined reward model on the same held-out pairs of the first
            # PPO policy and of the final one, by pair kind (the tiny world's gold tells them)
            details = entry["per_seed"][0]["details"]
            for key in ("reward_models_held_out", "reward_models_on_policy"):
                comparison = details[key]
                assert set(comparison) == {"original", "refined", "refined_minus_original", "by_kind"}, key
                assert comparison["original"]["n"] + comparison["original"]["n_annotator_ties"] == 8, key  # drift's
                assert set(comparison["by_kind"]) <= set(world.PAIR_KINDS) - {world.EQUAL_QUALITY}, key
    # best-of-4 of the SFT policy: no PPO, the analytic KL log 4 - 3/4
    assert results["methods"]["best_of_n"]["metrics"]["kl"]["mean"] == pytest.approx(math.log(4) - 0.75)
    assert "drift" not in results["methods"]["best_of_n"]["per_seed"][0]["details"]
    curves = results["overoptimisation"]["per_seed"][0]["curves"]
    assert [p["n"] for p in curves["best_of_n"]] == [1, 2, 4, 8] and [p["step"] for p in curves["ppo"]] == [0, 4, 8]
    assert [p["step"] for p in curves["grpo"]] == [0, 1, 2]  # GRPO's checkpoints beside PPO's
    report = (finished_run / "report.md").read_text()
    assert "## Over-optimisation" in report and "## Verdict" in report and "## RLP's mechanism" in report
    assert "## Reward-model accuracy on the policy's own samples, by pair kind" in report
    # SPG at threshold 0 (the smoke budget's) is the paper's select-all ablation, and every table names it so
    assert results["labels"] == {"rlp_spg": "rlp_spg (gamma=0)"}
    assert "| `rlp_spg (gamma=0)` | ppo | farm |" in report
    # beside the paper's numbers, the paper's RLP-SPG was not run: its ablation was
    assert [line for line in report.splitlines() if line.startswith("| `rlp_spg` |")] == [
        line for line in report.splitlines() if line.startswith("| `rlp_spg` | not run |")] != []
    assert "over-optimisation fits, mean over seeds: best_of_n: R_bon alpha" in (finished_run / "run.log").read_text()
    spg = results["diagnostics"]["rlp_spg"][0]
    assert spg["acceptance_rate"] == 1 and sum(spg["confidence_histogram"].values()) == 12 and spg["n_pairs"] > 0
    assert spg["share_of_reward_data"] == spg["n_pairs"] / (200 + spg["n_pairs"])  # REDUCED_BUDGET's 200 pairs
    online = results["diagnostics"]["online_rlhf"][0]
    assert online["n_instructions"] == 12 and 0 < online["n_pairs"] <= 12 and "gold_agreement" in online
    assert results["diagnostics"]["rlp_uml"][0]["mib_curve"]  # UML's loss curve, per seed
    assert "## Reward learning on policy: the refinement and its mechanism" in report
    assert (finished_run / "plots" / "uml_mib_loss.png").stat().st_size > 0
    for name in ("report.md", "report.html", "config.yaml", "run.log"):
        assert (finished_run / name).stat().st_size > 0, name
    # the untrained base model is scored on the knowledge task too, and the report says so
    base = results["base_model"]
    assert base["name"].startswith("tiny-base-") and base["knowledge"]["n"] == len(world.FACTS)
    report = (finished_run / "report.md").read_text()
    assert f"Base model `{base['name']}`: knowledge_acc " in report and "on task `tiny_knowledge`" in report


def test_ppo_raises_the_proxy_reward_over_its_run(finished_run):
    """Every PPO run's rollouts score higher on the reward model in the second half of the run than at its first
    step, whose rollouts come from the SFT policy itself (before any update)."""
    results = json.loads((finished_run / "results.json").read_text())
    for method in ("ppo", "rlp_uml", "rlp_spg"):
        rewards = [r["proxy_reward"] for r in results["methods"][method]["per_seed"][0]["details"]["ppo_history"]]
        later = sum(rewards[len(rewards) // 2:]) / (len(rewards) - len(rewards) // 2)
        print(f"\n{method}: proxy reward at step 1 {rewards[0]:.3f}, mean over steps 5-8 {later:.3f}")
        assert later > rewards[0] + 0.1, (method, rewards)


def test_the_refined_reward_models_score_pairs_differently_from_the_original(finished_run, stage_cache):
    """RLP retrains the reward model (UML with its multi-view loss, SPG with synthetic pairs), online RLHF with fresh
    labels: each refined model scores the same answers differently from the original, and from the others."""
    results = json.loads((finished_run / "results.json").read_text())
    stages = {s["path"] for s in results["stages"] if s["stage"] == "reward" and s["seed"] == 0}
    answers = json.loads((finished_run / "outputs" / "sft" / "farm" / "model_outputs.json").read_text())
    instructions, outputs = [a["instruction"] for a in answers], [a["output"] for a in answers]
    scores = {path: RewardModelScorer(stage_cache / path).score(instructions, outputs).tolist()
              for path in sorted(stages)}
    assert len(scores) == 4  # the original, the two RLP refinements and online RLHF's
    distinct = {tuple(round(x, 4) for x in values) for values in scores.values()}
    assert len(distinct) == 4, scores


def assert_offline_accuracy_measured(stage_cache: Path, results: dict, accuracy: float | None) -> None:
    """A reward model's held-out accuracy counts the val pairs gold ranks; at this budget the SFT policy's two
    samples may tie in gold everywhere, and then the accuracy is missing (null), never a made-up number."""
    paths = {s["path"] for s in results["stages"] if s["stage"] == "reward" and s["seed"] == 0}
    measured = [json.loads((stage_cache / p / "metrics.json").read_text())["val"] for p in sorted(paths)]
    assert measured and all(v["n"] + v["n_annotator_ties"] == 24 for v in measured)  # REDUCED_BUDGET's val_size
    if accuracy is None:
        assert any(v["n"] == 0 for v in measured)
    else:
        assert 0 <= accuracy <= 1 and any(accuracy == pytest.approx(v["accuracy"]) for v in measured)


def test_shared_stages_are_trained_once(finished_run):
    log = (finished_run / "run.log").read_text()
    assert log.count("stage sft              training") == 1
    assert log.count("stage reward           training") == 4  # shared RM, UML's, SPG's and online RLHF's
    # the shared PPO, one per refining method, and the over-optimisation curve's own low-KL PPO (the preset's
    # eval.overoptimisation_ppo_kl_coef)
    assert log.count("stage ppo              training") == 5
    assert log.count("stage policy_samples   training") == 1  # UML, SPG and online RLHF share the sample set
    # the first PPO policy's held-out pairs are drawn once for the three methods that check against them
    assert len(re.findall(r"\] stage mechanism_samples +training ", log)) == 1 + 3
    for stage in ("dpo", "expert_iteration", "grpo"):  # GRPO's stage serves the method and its curve
        assert len(re.findall(rf"\] stage {stage} +training ", log)) == 1, stage


def test_a_second_identical_run_trains_nothing(finished_run, command, stable):
    before = json.loads((finished_run / "results.json").read_text())
    log_before = (finished_run / "run.log").read_text()
    assert main(command(finished_run)) == 0
    new_lines = (finished_run / "run.log").read_text()[len(log_before):]
    assert not re.search(r"\] stage \S+ +training ", new_lines) and " reused " in new_lines
    assert stable(json.loads((finished_run / "results.json").read_text())) == stable(before)


def test_another_experiment_into_another_out_rebuilds_only_what_its_change_touches(finished_run, smoke_command):
    """The README's `--set ppo.kl_coef=0.05 --out runs/kl05`: the stage cache is the user's, not the run dir's, so
    SFT, the preference pairs and the reward model of the first run are reused, and PPO is trained anew."""
    out = finished_run.parent / "kl05"
    assert main([*smoke_command(out, ["ppo"]), *PPO_THAT_LEARNS, "--set", "ppo.kl_coef=0.05"]) == 0
    log = (out / "run.log").read_text()
    trained = set(re.findall(r"\] stage (\S+) +training ", log))
    reused = set(re.findall(r"\] stage (\S+) +reused ", log))
    assert {"sft", "preference_pairs", "reward"} <= reused - trained, log
    assert "ppo" in trained and not {"sft", "preference_pairs", "reward"} & trained, trained
    assert not (out / "stages").exists()


def test_a_run_killed_mid_stage_resumes_with_the_same_results(finished_run, tmp_path, command, stable,
                                                               wait_for_log_line):
    out, stages = finished_run.parent / "killed", tmp_path / "stages"  # a cache of its own: the run builds PPO
    argv = [sys.executable, "-m", "harness.run", *command(out), "--cache", str(stages)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "run.log"
    wait_for_log_line(log, "stage ppo              training", process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list(stages.glob(".tmp-ppo-*")), "the kill should land inside the PPO stage"
    assert not (out / "results.json").exists()

    assert main([*command(out), "--cache", str(stages)]) == 0
    log_text = log.read_text()
    assert "stage sft              reused" in log_text  # finished before the kill, so reused
    assert not list(stages.glob(".tmp-*"))
    expected = stable(json.loads((finished_run / "results.json").read_text()))
    assert stable(json.loads((out / "results.json").read_text())) == expected
