"""The reports of the full evaluation on small synthetic raw reports: FID_cls per sampling setting and the
data-vs-data floor, adherence comparisons per category, "not measured yet" from an absent run, optional doc
markers, the smoke-run guard, and the wall-time estimate of scripts/eval_default_model.sh."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bitdance.evaluation import results_docs as rd


def _raw(folder: Path, results: dict, recipe: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"results": results, "recipe": recipe}))


def _half(fid: float, lo: float, hi: float) -> dict:
    return {
        "low": lo,
        "high": hi,
        "method": "half-samples",
        "reps": 200,
        "fid_infinity": fid - 0.5,
        "fid_infinity_ci95": [lo - 0.5, hi - 0.5],
    }


def _fid_run(run: Path, what: str, fid: float, lo: float, hi: float, effnet: bool = False, **rec) -> None:
    feats = {"cls": {"fid": fid, "kid": 0.01, "dim": 128, "fid_ci95": _half(fid, lo, hi), "seconds": 1}}
    if effnet:
        feats["effnet"] = {"fid": 40.0, "kid": 0.02, "dim": 1280, "fid_ci95": _half(40, 38, 42), "seconds": 2}
    res = {
        "features": feats,
        "n_fake": 8,
        "generation_seconds": 3.0,
        "classifier": {"is_fake": 8.0, "class_accuracy_fake": 0.9},
    }
    recipe = {"command": f"bitdance eval fid {what}", "data": {"split": "test-heldout"}, "samples": 8, **rec}
    _raw(run / what, res, {"machine": {}, "utc": "t", **recipe})


def test_fid_settings_tables_compare_with_the_defaults_and_name_what_is_missing(tmp_path: Path) -> None:
    from bitdance.evaluation.results_collect import collect

    run = tmp_path / "eval"
    _fid_run(run, "fid-heldout", 2.5, 2.2, 2.8, effnet=True, sampling={"parallel_num": 4})
    _fid_run(run, "fid-heldout-p16", 3.5, 3.1, 3.9, sampling={"parallel_num": 16})  # apart
    _fid_run(run, "fid-heldout-s50", 2.6, 2.3, 2.9)  # overlaps
    _fid_run(run, "fid-floor", 0.4, 0.1, 0.7, effnet=True)
    collect(run, tmp_path / "results")
    rep = rd.load_reports(tmp_path / "results")["quality_per_p"]
    per_p = rep["tables"]["per_p"]["rows"]
    assert per_p[0] == ["P=1", "not measured yet", "-", "-", "-", "-", "-"]
    assert per_p[1][:4] == ["P=4 (default)", "2.50", "[2.20, 2.80]", "(default)"]
    assert per_p[2][:4] == ["P=16", "3.50", "[3.10, 3.90]", "no"] and per_p[2][-1] == "half-samples"
    steps = rep["tables"]["steps"]["rows"]
    assert [r[0] for r in steps] == ["10 head steps", "20 head steps (default)", "50 head steps"]
    assert steps[0][1] == "not measured yet" and steps[2][3] == "yes"
    assert rep["tables"]["int8"]["rows"][1][1] == "not measured yet"
    floor = rep["tables"]["floor"]["rows"]
    assert floor[0] == ["FID_cls", "0.400", "[0.100, 0.700]", "2.50", "[2.20, 2.80]", 8]
    assert (
        floor[1][0] == "FID_effnet"
        and rep["recipe"]["commands"]["fid-floor"] == "bitdance eval fid fid-floor"
    )
    q = rd.load_reports(tmp_path / "results")["quality_heldout"]["tables"]["quality"]
    labels = [r[0] for r in q["rows"]]
    assert "FID_cls extrapolated to n = infinity (small-sample bias removed)" in labels
    cls = q["rows"][0]
    assert cls == ["FID_cls", "2.50", "[2.20, 2.80]", "0.400", "[0.100, 0.700]", 8, "half-samples"]
    ext = q["rows"][labels.index("FID_cls extrapolated to n = infinity (small-sample bias removed)")]
    assert ext[1:3] == ["2.00", "[1.70, 2.30]"]  # fid_infinity and its interval, read from the raw report


def test_fid_settings_without_any_quality_run_write_no_report(tmp_path: Path) -> None:
    from bitdance.evaluation.results_collect import per_p_report

    (tmp_path / "eval").mkdir()
    assert per_p_report(tmp_path / "eval") is None


def _summary(p_by_cat: dict[str, float], seed: str, prompts: int = 30) -> dict:
    from bitdance.evaluation.adherence import summarize

    rng, recs, i = random.Random(seed), [], 0
    for cat, p in p_by_cat.items():
        for _ in range(prompts):
            for s in range(4):
                recs.append({"prompt_index": i, "category": cat, "correct": rng.random() < p, "seed": s})
            i += 1
    return summarize(recs)


def _adh_run(runs: Path, name: str, p_by_cat: dict[str, float], model_hash: str = "h", **rec) -> None:
    rep = {
        "results": {"summary": _summary(p_by_cat, name)},
        "recipe": {
            "command": f"bitdance eval adherence {name}",
            "model": "m",
            "model_hash": model_hash,
            "seeds": [0, 1, 2, 3],
            "machine": {},
            "utc": "2026-01-01T00:00:00Z",
            **rec,
        },
    }
    (runs / name).mkdir(parents=True)
    (runs / name / "report.json").write_text(json.dumps(rep))


def test_adherence_comparison_per_category_with_n_intervals_and_overlap(tmp_path: Path) -> None:
    from bitdance.evaluation.adherence_report import write_results

    runs, out = tmp_path / "adh", tmp_path / "results"
    _adh_run(runs, "default-p4", {"counting": 0.9, "colour": 0.8})
    _adh_run(runs, "default-p16", {"counting": 0.2, "colour": 0.8})  # counting falls: intervals apart
    _adh_run(runs, "default-int8", {"counting": 0.9, "colour": 0.8}, model_hash="q")  # quantized: own hash
    write_results(runs, out)
    m = rd.load_reports(out)["adherence_default_matrix"]
    rows = m["tables"]["by_parallel_all_by_category"]["rows"]
    assert rows[0] == ["all", "P=1", "not measured yet", "-", "-", "-", "-"]
    by = {(r[0], r[1]): r for r in rows[1:]}
    assert by["colour", "P=16"][4:] == [30, 120, "yes"]
    assert (
        by["counting", "P=16"][-1] == "no" and by["counting", "P=4, 20 steps (defaults)"][-1] == "(defaults)"
    )
    acc, (lo, hi) = float(by["counting", "P=16"][2]), json.loads(by["counting", "P=16"][3])
    assert lo <= acc <= hi < 0.5
    assert rows[-1][0] == "overall (mean of categories)"
    int8 = m["tables"]["int8_vs_fp32_all_by_category"]["rows"]
    assert {r[1] for r in int8} == {"P=4, 20 steps (defaults)", "int8 pipeline (bitdance quantize defaults)"}
    assert m["recipe"]["int8_model_hash"] == "q" and m["recipe"]["ignored_other_weights"] == []


def test_adherence_matrix_compares_only_runs_of_the_defaults_weights(tmp_path: Path) -> None:
    from bitdance.evaluation.adherence_report import write_matrices, write_results

    runs, out = tmp_path / "adh", tmp_path / "results"

    _adh_run(runs, "freeform-p4", {"counting": 0.9}, model_hash="new")
    _adh_run(runs, "freeform-p16", {"counting": 0.3}, model_hash="old")  # a stale report of other weights
    write_results(runs, out)
    m = json.loads((out / "adherence_freeform_matrix.json").read_text())
    assert m["recipe"]["ignored_other_weights"] == ["p16"]
    assert ["all", "P=16", "not measured yet", "-", "-", "-", "-"] in m["tables"][
        "by_parallel_all_by_category"
    ]["rows"]
    assert write_matrices(tmp_path / "empty") == []


def test_smoke_adherence_runs_are_refused_as_results(tmp_path: Path) -> None:
    from bitdance.evaluation.adherence_report import main, write_results

    runs = tmp_path / "adh"
    _adh_run(runs, "freeform-p4", {"counting": 0.9}, limit=4)
    with pytest.raises(ValueError, match="smoke run"):
        write_results(runs, tmp_path / "results")
    assert main(["results", str(runs), str(tmp_path / "results")]) == 2
    assert write_results(runs, tmp_path / "preview", allow_limited=True)


def test_first_prompts_per_category_for_smoke_runs() -> None:
    from bitdance.evaluation.cli import first_per_category
    from bitdance.evaluation.prompts import load_suite

    specs = load_suite("freeform")
    kept = first_per_category(specs, 2)
    keys = {(s.split, s.category) for s in specs}
    assert len(kept) == 2 * len(keys) and kept == [s for s in specs if s in kept]
    with pytest.raises(ValueError, match="--limit"):
        first_per_category(specs, 0)


OPTIONAL_DOC = "# Demo\n\n<!-- results:demo/later optional -->\n<!-- /results -->\n"


def test_optional_marker_says_not_measured_until_the_table_exists(tmp_path: Path) -> None:
    (tmp_path / "docs" / "results").mkdir(parents=True)
    doc = tmp_path / "docs" / "a.md"
    doc.write_text(OPTIONAL_DOC)
    assert rd.build_docs(tmp_path) == (["docs/a.md"], [])
    assert "Not measured yet: no table `later` in `docs/results/demo.json`." in doc.read_text()
    assert rd.check_docs(tmp_path) == []
    table = {"columns": ["setting", "FID_cls"], "rows": [["P=1", "2.10"]]}
    rep = {"name": "demo", "recipe": {"command": "x"}, "metrics": {}, "tables": {"later": table}}
    (tmp_path / "docs" / "results" / "demo.json").write_text(json.dumps(rep))
    assert len(rd.check_docs(tmp_path)) == 1  # the measured table now differs from the placeholder
    rd.build_docs(tmp_path)
    assert "| P=1 | 2.10 |" in doc.read_text() and rd.check_docs(tmp_path) == []
    # without "optional" a missing table stays an error
    doc.write_text(OPTIONAL_DOC.replace(" optional", "").replace("later", "other"))
    assert "no table 'other'" in rd.check_docs(tmp_path)[0]
    # a preview build with another report folder
    other = tmp_path / "elsewhere"
    other.mkdir()
    doc.write_text(OPTIONAL_DOC)
    assert rd.build_docs(tmp_path, other) == (["docs/a.md"], []) and "Not measured yet" in doc.read_text()


def test_estimate_scales_work_keeps_start_up_and_schedules_like_the_driver(tmp_path: Path) -> None:
    from bitdance.evaluation import eval_estimate as ee

    run = tmp_path / "smoke"
    (run / "adh" / "freeform-p4").mkdir(parents=True)
    rep = {"results": {"seconds": 10.0}, "recipe": {"samples": 64}}
    (run / "adh" / "freeform-p4" / "report.json").write_text(json.dumps(rep))
    (run / "adh" / "freeform-p1").mkdir(parents=True)
    rep = {"results": {"seconds": 30.0}, "recipe": {"samples": 64}}
    (run / "adh" / "freeform-p1" / "report.json").write_text(json.dumps(rep))
    (run / "timings.tsv").write_text("adh-freeform-p4\t15\t640\nadh-freeform-p1\t35\t640\nbench\t60\t1\n")
    (run / "jobs.txt").write_text("adh-freeform-p1 adh-freeform-p4\n")
    e = ee.estimate(run, workers=2)
    est = {j["job"]: j["est"] for j in e["jobs"]}
    assert est == {"adh-freeform-p4": 5 + 100, "adh-freeform-p1": 5 + 300, "bench": 60}
    assert e["parallel_seconds"] == 305 and e["total_seconds"] == 365
    assert ee.estimate(run, workers=1)["parallel_seconds"] == 410
    assert e["longest_first"] == ["adh-freeform-p1", "adh-freeform-p4"]
    assert "total about 6 min" in ee.estimate_markdown(run, 2)
    with pytest.raises(FileNotFoundError, match="SMOKE=1"):
        ee.estimate(tmp_path / "none")


def test_estimate_times_the_fid_interval_at_the_full_n(tmp_path: Path, monkeypatch) -> None:
    from bitdance.evaluation import eval_estimate as ee

    calls = []

    def fake_interval(n, dim, reps, probe_reps=4):
        calls.append((n, dim, reps))
        return n / 100  # grows with n: 0.08 s at the smoke n, 10 s at the full n

    monkeypatch.setattr(ee, "interval_seconds", fake_interval)
    run = tmp_path / "smoke"
    _fid_run(run, "fid-heldout", 2.5, 2.2, 2.8)  # generation 3 s + cls features 1 s (of which interval 0.08)
    (run / "timings.tsv").write_text("fid-heldout\t10\t1000\n")
    (est,) = ee.estimate(run)["jobs"]
    assert sorted(calls) == [(8, 128, 200), (1000, 128, 200)]
    assert est["est"] == pytest.approx(6 + (4 - 0.08) * 1000 / 8 + 10)


def _adh_report(
    out: Path, setting: str, overall: float, lo: float, hi: float, solver: str, steps: int
) -> None:
    split = {"overall": overall, "overall_ci95": [lo, hi]}
    rep = {
        "name": f"adherence_freeform_{setting}",
        "recipe": {"command": f"adh {setting}", "model_hash": "h", "sampling": {"solver": solver}}
        | ({"effective_defaults": {"num_sampling_steps": steps}} if setting == "p4" else {})
        | ({"sampling": {"solver": solver, "num_sampling_steps": steps}} if setting != "p4" else {}),
        "created": f"2026-01-0{steps % 9 + 1}T00:00:00Z",
        "metrics": {
            "overall": overall + 0.1,
            "overall_ci95": [0, 1],
            "splits": {"test": split, "dev": split},
        },
    }
    (out / f"{rep['name']}.json").write_text(json.dumps(rep))


def test_sampler_quality_applies_the_rule_point_inside_both_reference_intervals(tmp_path: Path) -> None:
    from bitdance.evaluation.results_collect import collect
    from bitdance.evaluation.sampler_quality import inside, sampler_quality_report, write_sampler_quality

    run, out = tmp_path / "eval", tmp_path / "results"
    ref = {"sampling": {"solver": "euler_maruyama", "num_sampling_steps": 20}}
    _fid_run(run, "fid-heldout", 2.5, 2.2, 2.8, effnet=True, **ref)
    # fast: both points inside; fast4: its FID interval overlaps the reference's, the point lies outside
    _fid_run(
        run, "fid-heldout-fast", 2.79, 2.5, 3.1, sampling={"solver": "em_fast", "num_sampling_steps": 10}
    )
    _fid_run(
        run, "fid-heldout-fast4", 2.81, 2.5, 3.1, sampling={"solver": "em_fast", "num_sampling_steps": 5}
    )
    collect(run, out)
    assert sampler_quality_report(out) is None  # no reference adherence report yet
    _adh_report(out, "p4", 0.60, 0.55, 0.65, "euler_maruyama", 20)
    _adh_report(out, "fast", 0.64, 0.58, 0.70, "em_fast", 10)
    rep = sampler_quality_report(out)
    rows = {r[0]: r for r in rep["tables"]["equal_quality"]["rows"]}
    assert rows["reference"][1:4] == ["euler_maruyama, 20", "2.50", "[2.20, 2.80]"]
    assert rows["reference"][-3:] == ["(reference)"] * 3
    assert rows["fast"][1:] == [
        "em_fast, 10",
        "2.79",
        "[2.50, 3.10]",
        "0.640",
        "[0.580, 0.700]",
        "yes",
        "yes",
        "yes",
    ]
    assert rows["fast4"] == ["fast4", "not measured yet", *["-"] * 7]  # FID without adherence: not measured
    _adh_report(out, "fast4", 0.50, 0.45, 0.55, "em_fast", 5)  # adherence point below the reference's CI
    rep = sampler_quality_report(out)
    rows = {r[0]: r for r in rep["tables"]["equal_quality"]["rows"]}
    assert rows["fast4"][-3:] == ["no", "no", "no"]
    assert (
        rep["metrics"]["fast"]["equal_quality"] is True and rep["metrics"]["fast4"]["equal_quality"] is False
    )
    verdict = {"fid": "outside", "adherence": "outside", "equal_quality": "not equal quality"}
    assert rep["metrics"]["fast4"]["verdict"] == verdict and "verdict" not in rep["metrics"]["reference"]
    assert rep["recipe"]["commands"]["fast4"]["fid"] == "bitdance eval fid fid-heldout-fast4"
    assert inside(2.8, (2.2, 2.8)) and not inside(2.81, (2.2, 2.8))  # closed interval
    path = write_sampler_quality(out)
    assert (
        rd.load_reports(out)["quality_sampler"]["tables"] == rep["tables"]
        and path.name == "quality_sampler.json"
    )
    per_p = rd.load_reports(out)["quality_per_p"]["tables"]["sampler"]["rows"]
    assert [r[1] for r in per_p] == ["2.50", "2.79", "2.81"]


def test_sampler_quality_refuses_runs_of_two_settings_or_two_weights(tmp_path: Path) -> None:
    from bitdance.evaluation.results_collect import collect
    from bitdance.evaluation.results_docs import main
    from bitdance.evaluation.sampler_quality import sampler_quality_report

    run, out = tmp_path / "eval", tmp_path / "results"
    _fid_run(
        run, "fid-heldout", 2.5, 2.2, 2.8, sampling={"solver": "euler_maruyama", "num_sampling_steps": 20}
    )
    _fid_run(run, "fid-heldout-fast", 2.6, 2.3, 2.9, sampling={"solver": "em_fast", "num_sampling_steps": 10})
    collect(run, out)
    _adh_report(out, "p4", 0.60, 0.55, 0.65, "euler_maruyama", 20)
    _adh_report(out, "fast", 0.60, 0.55, 0.65, "em_fast", 5)  # not the FID run's steps
    with pytest.raises(ValueError, match="not one setting"):
        sampler_quality_report(out)
    _adh_report(out, "fast", 0.60, 0.55, 0.65, "em_fast", 10)
    p = out / "adherence_freeform_fast.json"
    p.write_text(p.read_text().replace('"model_hash": "h"', '"model_hash": "other"'))
    with pytest.raises(ValueError, match="different weights"):
        sampler_quality_report(out)
    with pytest.raises(ValueError, match="lacks the reference"):
        main(["sampler-quality", "--results", str(tmp_path / "eval")])
