"""Malformed suite data is refused before training with one line naming the split and the problem."""

from __future__ import annotations

import pytest
from datasets import Dataset

from harness.core.errors import ConfigError
from harness.suites.validate import validate_splits


def good_splits() -> dict[str, Dataset]:
    pair = {"instruction": ["q1", "q2"], "output_1": ["a", "b"], "output_2": ["c", "d"], "preference": [1, 2]}
    return {
        "sft": Dataset.from_dict({"instruction": ["q1"], "output": ["a"]}),
        "preference": Dataset.from_dict(pair),
        "unlabeled": Dataset.from_dict({"instruction": ["q3"]}),
        "val": Dataset.from_dict(pair),
        "farm": Dataset.from_dict({"instruction": ["e1", "e2"], "output": ["r1", "r2"], "generator": ["g", "g"]}),
    }


def test_good_splits_pass():
    validate_splits(good_splits(), ("farm",), "suite x")


def _with(name, **columns):
    splits = good_splits()
    data = splits[name].to_dict()
    data.update(columns)
    splits[name] = Dataset.from_dict(data)
    return splits


@pytest.mark.parametrize(
    "splits, message",
    [
        ({k: v for k, v in good_splits().items() if k != "val"}, "split 'val' is missing"),
        ({**good_splits(), "farm": good_splits()["farm"].remove_columns("output")}, "lacks column 'output'"),
        ({**good_splits(), "unlabeled": Dataset.from_dict({"instruction": []})}, "split 'unlabeled' is empty"),
        (_with("farm", instruction=["e1", "e1"]), "appears more than once"),
        (_with("farm", instruction=["e1", "  "]), "instruction 1 is empty"),
        (_with("preference", preference=[1, 3]), "preference 3 is not 1, 1.5 or 2"),
        (_with("sft", output=[None]), "column 'output' must hold text"),
    ],
)
def test_malformed_splits_fail_with_one_line(splits, message):
    with pytest.raises(ConfigError) as err:
        validate_splits(splits, ("farm",), "suite x")
    assert message in str(err.value) and str(err.value).startswith("suite x: split")
    assert "\n" not in str(err.value)
