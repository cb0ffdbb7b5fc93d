"""The report's figures, checked on their plotting data: one colour per method everywhere, legends off the data,
chance and threshold lines, axes ranged to the data, captions that say what the error bars are."""

from __future__ import annotations

import json

import pytest
from matplotlib.colors import to_hex
from PIL import Image

from harness.report import write_reports
from harness.report.overoptimisation import curve_labels, plot_curves
from harness.report.plots import (
    METHOD_COLOURS,
    method_colour,
    plot_drift,
    plot_ppo,
    plot_spg_confidence,
    plot_win_rates,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_run_dir):
    run_dir = make_run_dir(tmp_path_factory.mktemp("plots"))
    write_reports(run_dir)
    return run_dir, json.loads((run_dir / "results.json").read_text())


def _colours(figure) -> dict[str, str]:
    """Legend label -> colour of every line and bar container on the figure's axes."""
    found = {}
    for ax in figure.axes:
        for line in ax.get_lines():
            found[line.get_label()] = to_hex(line.get_color())
        for container in ax.containers:
            patches = getattr(container, "patches", None)
            if patches:
                found[container.get_label()] = to_hex(patches[0].get_facecolor())
    return found


def test_each_method_has_one_colour_in_every_figure(run):
    _, results = run
    figures = [plot_win_rates(results)[1], plot_drift(results)[1], plot_ppo(results)[1]]
    for figure in figures:
        colours = _colours(figure)
        assert colours.get("ppo", colours.get("ppo: its own samples")) == METHOD_COLOURS["ppo"]
        assert colours.get("rlp_spg", colours.get("rlp_spg: its own samples")) == METHOD_COLOURS["rlp_spg"]
    assert len(set(METHOD_COLOURS.values())) == len(METHOD_COLOURS)
    assert method_colour("my_plugin") == method_colour("my_plugin")  # a plug-in's is fixed by its name


def test_legends_sit_below_the_panels_never_on_the_data(run):
    _, results = run
    for caption, figure in (plot_win_rates(results), plot_drift(results), plot_ppo(results),
                            plot_spg_confidence(results)):
        assert not any(ax.get_legend() for ax in figure.axes), caption  # no legend inside an axis
        (legend,) = figure.legends
        figure.canvas.draw()
        legend_top = legend.get_window_extent().y1
        assert all(legend_top <= ax.get_window_extent().y0 for ax in figure.axes), caption


def test_drift_draws_chance_and_one_held_out_line_per_reward_model(run):
    _, results = run
    results = json.loads(json.dumps(results))
    results["methods"]["rlp_spg"]["metrics"]["rm_acc_offline"]["mean"] = 0.71  # the same value as ppo's
    caption, figure = plot_drift(results)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert "chance (0.5)" in labels and labels.count("held-out pairs: ppo, rlp_spg") == 1
    low, high = figure.axes[0].get_ylim()
    assert 0.45 < low < 0.5 and 0.71 < high < 0.75  # ranged to the data, chance included
    assert "no error bars" in caption and "dotted: chance" in caption


def test_win_rate_axis_is_ranged_to_the_bars_and_the_caption_names_the_error_bars(run):
    _, results = run
    caption, figure = plot_win_rates(results)
    low, high = figure.axes[0].get_ylim()
    # bars 33-50 with 95% intervals up to 50 + 25.4 and down to 33 - 38.1 (clipped at 0)
    assert low == 0.0 and 75.4 < high < 82
    assert "error bars: 95% interval over seeds" in caption and "not from 0" in caption


def test_spg_confidence_says_it_pools_seeds_and_marks_the_threshold(run):
    _, results = run
    results = json.loads(json.dumps(results))
    for record in results["diagnostics"]["rlp_spg"]:
        record["confidence_threshold"] = 0.5
    caption, figure = plot_spg_confidence(results)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert "confidence threshold 0.5: pairs only at or above" in labels
    assert "pooled over 2 seeds" in caption


def test_overoptimisation_labels_are_unique_and_name_the_curve_s_own_ppo(run, tmp_path):
    run_dir, results = run
    curves = results["overoptimisation"]["mean"]
    figure = plot_curves(curves["curves"], curves["fits"], curve_labels(run_dir))
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert len(labels) == len(set(labels)) == 4 and "PPO checkpoints (the run's ppo): fit R_RL" in labels
    (tmp_path / "config.yaml").write_text("eval:\n  overoptimisation_ppo_kl_coef: 0.02\n")
    assert curve_labels(tmp_path)["ppo"] == "PPO checkpoints (its own run at kl_coef 0.02, not the table's ppo)"


def test_saved_pngs_carry_their_caption(run):
    run_dir, _ = run
    assert Image.open(run_dir / "plots" / "win_rate.png").info["Title"].startswith("Win rate against the reference")
