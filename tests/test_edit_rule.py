"""The default-method rule of any-order models (edit_rule.py) and the committed choice it made on dev."""

import json
from pathlib import Path

import pytest

from bitdance.evaluation.edit_rule import choose_default_method
from bitdance.sampling.inpaint import ANY_ORDER_EDIT_METHOD

ROOT = Path(__file__).resolve().parents[1]


def _m(acc, lo, hi):
    return {"context_dependent": {"accuracy": acc, "ci95": [lo, hi]}}


def test_default_method_rule():
    clear = {"substitute": _m(0.5, 0.4, 0.6), "joint": _m(0.9, 0.85, 0.95), "kept_first": _m(0.6, 0.5, 0.7)}
    assert choose_default_method(clear)["method"] == "joint"
    tie = {"substitute": _m(0.5, 0.4, 0.6), "joint": _m(0.9, 0.85, 0.95), "kept_first": _m(0.86, 0.8, 0.9)}
    r = choose_default_method(tie)
    assert r["method"] == "kept_first" and r["best"] == "joint" and r["tied"] == ["kept_first", "joint"]
    assert choose_default_method({"prompt_only": _m(1.0, 1.0, 1.0), **clear})["method"] == "joint"
    with pytest.raises(ValueError, match="need one of"):
        choose_default_method({"prompt_only": _m(1.0, 1.0, 1.0)})


def test_any_order_default_is_what_the_rule_chose_on_the_dev_split():
    report = json.loads((ROOT / "docs/results/edit_bench_dev.json").read_text())
    assert report["recipe"]["split"] == "dev"
    metrics = {k: v for k, v in report["metrics"].items() if isinstance(v, dict) and "context_dependent" in v}
    choice = choose_default_method(metrics)
    assert choice == report["metrics"]["default_method_rule"]
    assert choice["method"] == ANY_ORDER_EDIT_METHOD
