"""Each method's evaluation outputs in alpaca_eval's formats, at a stable path of the run dir.

The win-rate stages hold these files under hashed names (``stages/winrate_farm-<key>/``) that change with every
config; users of alpaca_eval look for ``<model>/model_outputs.json``. So a finished run copies them to::

    outputs/<method>/<eval set>/model_outputs.json       seed 0: what the report's samples show
                                 reference_outputs.json
                                 annotations.json
    outputs/<method>-seed<k>/<eval set>/...              the other seeds, k >= 1

ready for ``alpaca_eval --model_outputs outputs/ppo/farm/model_outputs.json --reference_outputs
outputs/ppo/farm/reference_outputs.json --annotators_config <judge>`` or for alpaca_eval's own readers.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.core.publish import write_atomic

FILES = ("model_outputs.json", "reference_outputs.json", "annotations.json")


def model_name(method: str, seed: int) -> str:
    """The name the exported files give the model: the method, with ``-seed<k>`` for seeds after the first."""
    return method if seed == 0 else f"{method}-seed{seed}"


def output_dir(out_dir: Path, method: str, seed: int, eval_set: str) -> Path:
    """Where one method's outputs on one evaluation set for one seed are copied (see the module docstring)."""
    return Path(out_dir) / "outputs" / model_name(method, seed) / eval_set


def export_outputs(out_dir: Path, per_seed: dict[str, list[dict]]) -> list[Path]:
    """Copies every method's, seed's and evaluation set's alpaca_eval files out of their win-rate stages.

    The model is named after the method (:func:`model_name`) in ``model_outputs.json`` (``generator``) and
    ``annotations.json`` (``generator_2``): two methods that end with the same policy (RLP-SPG when it finds no
    synthetic pair keeps PPO's) share one stage, whose files name the method that built it first.

    Args:
        out_dir: the run dir.
        per_seed: method -> the per-seed records of the run (``details.eval_sets.<set>.stage`` names the stage).

    Returns:
        The folders written.
    """
    written = []
    for method, records in per_seed.items():
        for record in records:
            for eval_set, details in record.get("details", {}).get("eval_sets", {}).items():
                target = output_dir(out_dir, method, record["seed"], eval_set)
                target.mkdir(parents=True, exist_ok=True)
                name = model_name(method, record["seed"])
                for file, generator in zip(FILES, ("generator", None, "generator_2")):
                    rows = json.loads((Path(details["stage"]) / file).read_text())
                    if generator is not None:
                        rows = [{**row, generator: name} for row in rows]
                    write_atomic(target / file, json.dumps(rows, indent=2, allow_nan=False))
                written.append(target)
    return written

