"""Every number the docs quote comes from a committed report (docs/results/*.json), and the tools that keep
it so: `bitdance docs build` / `bitdance docs check`, the unmarked-number guard, the held-out split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bitdance.evaluation import results_docs as rd

ROOT = Path(__file__).resolve().parents[1]

# The unmarked-number rule (results_docs.unmarked_numbers): in these reference docs, outside results markers,
# code and comments, no decimal number and no number with %, x or × may appear unless it follows a
# comparison sign (a target or threshold: "<= 30%") or lies inside one of the phrases below. Each phrase is
# a fixed setting, an architecture fact or an interval level, never a measured result.
ALLOWED: dict[str, tuple[str, ...]] = {
    "docs/model_card.md": (
        "8× down",  # architecture: downsampling factor
        "| 3.35 M |",  # parameter counts: fixed by the architecture
        "| 10.71 M |",
        "22.7 M",
        "CFG 3.0",  # sampling default
        "95% percentile",  # interval level
        "+0.8 M parameters",  # size of a proposed change
    ),
    "docs/benchmarks.md": (
        "σ 1.5",  # SSIM window setting
        "95% percentile",
        "95% bootstrap",
        "|p − 0.5|",  # bit-balance definition
        "0 = every bit is a fair coin; 0.5 = a constant",
        "within 10% of",  # a shipping rule's threshold
        "below 0.05 dB",  # the int8 tokenizer rule's threshold
        "upright triangle −0.57",  # detector constants (frozen)
        "0.375 of the side",
        "10 % label dropout",  # baseline training settings
        "EMA 0.999",
        "min(0.999,",
        "≈ 0.24 M / 0.42 M",  # classifier parameter counts
        "CFG 3.0",
    ),
    "docs/quantization.md": (
        "torchao 0.18.0",  # versions
        "torch 2.13",
        "below 0.05 dB",  # the int8 tokenizer rule's threshold
        "above 1.5 GB",  # ONNX external-data threshold
    ),
}


def test_docs_match_their_reports() -> None:
    problems = rd.check_docs(ROOT)
    assert problems == [], "\n".join(problems) + "\n(run `bitdance docs build`)"


def test_reference_docs_quote_no_unmarked_number() -> None:
    for doc, allowed in ALLOWED.items():
        found = rd.unmarked_numbers((ROOT / doc).read_text(), allowed)
        assert found == [], f"{doc}: numbers outside results markers (line, number): {found}"


def test_reference_docs_embed_reports() -> None:
    for doc in ("docs/model_card.md", "docs/benchmarks.md"):  # quantization.md: nothing re-measured yet
        text = (ROOT / doc).read_text()
        assert rd.BLOCK_RE.search(text) or rd.INLINE_RE.search(text), f"{doc} quotes no report"


def test_reports_follow_the_shared_format() -> None:
    reports = rd.load_reports(ROOT / rd.RESULTS_DIR)
    assert {"tokenizer_heldout", "quality_heldout", "quality_per_p"} <= set(reports)
    for name, rep in reports.items():
        assert rep["name"] == name
        assert isinstance(rep["recipe"], dict) and (
            rep["recipe"].get("command") or rep["recipe"].get("commands")
        )
        assert isinstance(rep["metrics"], dict) and rep["created"]
        for tid, table in (rep.get("tables") or {}).items():
            assert all(len(row) == len(table["columns"]) for row in table["rows"]), f"{name}/{tid}"


def test_reported_quality_uses_the_heldout_split() -> None:
    reports = rd.load_reports(ROOT / rd.RESULTS_DIR)
    assert reports["tokenizer_heldout"]["recipe"]["data"]["split"] == "test-heldout"
    assert reports["tokenizer_heldout"]["recipe"]["data"]["n"] >= 1000
    assert reports["quality_heldout"]["recipe"]["data"]["split"] == "test-heldout"
    assert reports["quality_heldout"]["recipe"]["data"]["n"] == 1000
    settings = {"fid-heldout", "fid-heldout-p1", "fid-heldout-p16", "fid-heldout-s10", "fid-heldout-s50"}
    assert settings | {"fid-heldout-int8", "floor"} <= set(reports["quality_per_p"]["metrics"])


# ----------------------------------------------------------------------------- the mechanism on a tiny repo


REPORT = {
    "name": "demo",
    "recipe": {"command": "bitdance eval demo", "n": 4},
    "machine": {},
    "created": "2026-01-01T00:00:00Z",
    "metrics": {"fid": 2.5432, "acc": {"overall": "0.912"}},
    "tables": {"t": {"columns": ["setting", "accuracy (fraction)", "n"], "rows": [["P=4", "0.912", 1200]]}},
}
DOC = """# Demo

FID <!-- r:demo:metrics.fid|.2f -->2.54<!-- /r --> and accuracy
<!-- r:demo:metrics.acc.overall -->0.912<!-- /r -->.

<!-- results:demo/t -->
| setting | accuracy (fraction) | n |
|---|---|---|
| P=4 | 0.912 | 1200 |
<!-- /results -->
"""


def _repo(tmp_path: Path, doc: str = DOC, report: dict | None = None) -> Path:
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text(doc)
    (tmp_path / "docs" / "results" / "demo.json").write_text(json.dumps(report or REPORT))
    return tmp_path


def test_check_passes_on_a_matching_doc(tmp_path: Path) -> None:
    assert rd.check_docs(_repo(tmp_path)) == []


def test_check_catches_a_changed_number_in_the_doc(tmp_path: Path) -> None:
    root = _repo(tmp_path, DOC.replace("-->2.54<", "-->2.61<"))
    problems = rd.check_docs(root)
    assert len(problems) == 1
    assert problems[0].startswith("docs/a.md:3: <!-- r:demo:metrics.fid|.2f -->")
    assert "'2.61'" in problems[0] and "'2.54'" in problems[0]


def test_check_catches_a_changed_number_in_the_report(tmp_path: Path) -> None:
    rep = json.loads(json.dumps(REPORT))
    rep["tables"]["t"]["rows"][0][1] = "0.913"
    rep["metrics"]["acc"]["overall"] = "0.913"
    problems = rd.check_docs(_repo(tmp_path, report=rep))
    assert len(problems) == 2
    assert problems[0].startswith("docs/a.md:4: <!-- r:demo:metrics.acc.overall -->")
    assert problems[1].startswith("docs/a.md:6: <!-- results:demo/t -->")


def test_check_names_missing_reports_tables_and_paths(tmp_path: Path) -> None:
    doc = (
        "<!-- r:nope:metrics.x -->1<!-- /r --> <!-- r:demo:metrics.missing -->1<!-- /r -->\n"
        "<!-- results:demo/zz -->\n<!-- /results -->\n"
    )
    problems = rd.check_docs(_repo(tmp_path, doc))
    assert len(problems) == 3
    text = "\n".join(problems)
    assert "no table 'zz'" in text and "no report 'nope'" in text and "no 'metrics.missing'" in text


def test_build_rewrites_stale_spans_and_then_check_passes(tmp_path: Path) -> None:
    stale = DOC.replace("-->2.54<", "-->9.99<").replace("| P=4 | 0.912 | 1200 |", "| old |")
    root = _repo(tmp_path, stale)
    changed, errors = rd.build_docs(root)
    assert changed == ["docs/a.md"] and errors == []
    assert (root / "docs" / "a.md").read_text() == DOC
    assert rd.check_docs(root) == []
    assert rd.build_docs(root) == ([], [])  # idempotent


def test_check_catches_a_changed_number_in_the_real_docs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    card = tmp_path / "docs" / "model_card.md"
    text = card.read_text()
    m = rd.BLOCK_RE.search(text)
    assert m, "the model card embeds no generated table"
    body = m.group(3)
    digit = next(i for i, ch in enumerate(body) if ch.isdigit() and i > body.index("\n|---"))
    changed = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1 :]
    card.write_text(text[: m.start(3)] + changed + text[m.end(3) :])
    problems = rd.check_docs(tmp_path)
    assert len(problems) == 1 and problems[0].startswith("docs/model_card.md:")


def test_cli_check_and_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _repo(tmp_path, DOC.replace("-->2.54<", "-->2.61<").replace("-->0.912<", "-->0.9<"))
    assert rd.main(["check", "--root", str(root)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" ", 1)[0] for line in out] == ["docs/a.md:3:", "docs/a.md:4:"]
    assert rd.main(["build", "--root", str(root)]) == 0
    assert rd.main(["check", "--root", str(root)]) == 0
    with pytest.raises(SystemExit) as e:
        rd.main(["frobnicate"])
    assert e.value.code == 2


def test_cli_verb_is_registered() -> None:
    from bitdance.cli import VERBS

    assert VERBS["docs"][0] == "bitdance.evaluation.results_docs"


def test_a_report_named_differently_from_its_file_is_refused(tmp_path: Path) -> None:
    rep = dict(REPORT, name="other")
    with pytest.raises(rd.ReportError, match="demo"):
        rd.check_docs(_repo(tmp_path, report=rep))


def test_unmarked_rule_catches_quoted_numbers_and_spares_the_rest() -> None:
    text = (
        "FID_cls 2.54 here\n"
        "| generator | 28.7% |\n"
        "speed-up 1.40x and 36×\n"
        "max difference 2.5e-6\n"
        "<!-- r:a:metrics.b -->2.54<!-- /r --> `--lr 1.5e-3` weights <= 30% of fp32, 32×32 px, σ 1.5\n"
        "```\nPSNR 27.44 dB\n```\n"
    )
    found = rd.unmarked_numbers(text, allowed=("σ 1.5",))
    assert found == [(1, "2.54"), (2, "28.7"), (3, "1.40x"), (3, "36×"), (4, "2.5e-6")]


# ----------------------------------------------------------------------------- the held-out split


def test_heldout_split_avoids_every_item_that_steered_a_decision() -> None:
    from bitdance.evaluation.features import heldout_indices

    idx = heldout_indices("test-heldout", "fashion_mnist", 10_000)
    assert len(idx) == 4987 and idx == sorted(idx) and min(idx) == 5000
    # test items 0-999: eval tokenizer / eval fid / vs-diffusion / quantize --report at every stage
    assert not set(idx) & set(range(1000))
    # train-tokenizer's monitor: 64 items linspaced over its test mixture (fashion 10,000 + shapes 1,000 +
    # emoji 13,570 items in every tokenizer run of scripts/train_default_model.sh)
    monitor = torch.linspace(0, 10_000 + 1_000 + 13_570 - 1, 64).round().long().tolist()
    assert not set(idx) & {i for i in monitor if i < 10_000}


def test_heldout_split_is_refused_for_other_datasets() -> None:
    from bitdance.evaluation.features import load_real_set

    with pytest.raises(ValueError, match="defined for fashion_mnist only"):
        load_real_set("shapes", "test-heldout", 32, 4)


def test_heldout_items_are_the_test_items_they_name() -> None:
    from bitdance.data import build_dataset
    from bitdance.evaluation.features import load_real_set

    real = load_real_set("fashion_mnist", "test-heldout", 32, 2, {"tint": True})
    test = build_dataset("fashion_mnist", "test", 32, tint=True)
    assert real.key["split"] == "test-heldout" and real.key["items"] == "test items 5000..5001 (test-heldout)"
    assert real.captions == [test[5000]["caption"], test[5001]["caption"]]
    assert torch.equal(real.images[0], test[5000]["image"])


# ----------------------------------------------------------------------------- collect


def _raw(folder: Path, results: dict, recipe: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"kind": "x", "results": results, "recipe": recipe}))


def test_collect_reads_every_number_from_the_raw_reports(tmp_path: Path) -> None:
    from bitdance.evaluation.results_collect import collect

    run = tmp_path / "eval"
    rec = {
        "command": "bitdance eval tokenizer ...",
        "data": {"split": "test-heldout", "n": 3},
        "machine": {"cpu": "x"},
        "utc": "2026-01-01T00:00:00Z",
    }
    tok = {
        "psnr_db": 27.94158,
        "psnr_db_std": 3.5,
        "psnr_db_ci95": {"low": 27.79, "high": 28.104},
        "ssim": 0.92792,
        "ssim_std": 0.05,
        "ssim_ci95": {"low": 0.9257, "high": 0.93015},
        "images": 3,
    }
    _raw(run / "tokenizer-heldout", tok, rec)
    ci = {"low": 2.1, "high": 2.9}
    for what, p in (("fid-heldout", 4), ("fid-heldout-p16", 16)):
        fid = {
            "features": {"cls": {"fid": 2.5 + p / 100, "kid": 0.01, "fid_ci95": ci}},
            "n_fake": 3,
            "classifier": {"is_fake": 8.0, "class_accuracy_fake": 0.9},
        }
        _raw(run / what, fid, {**rec, "command": f"fid P={p}", "sampling": {"parallel_num": p}})
    written = {p.name for p in collect(run, tmp_path / "results")}
    assert written == {"tokenizer_heldout.json", "quality_heldout.json", "quality_per_p.json"}
    reports = rd.load_reports(tmp_path / "results")
    t = reports["tokenizer_heldout"]
    assert t["tables"]["summary"]["rows"][0] == ["PSNR (dB)", "27.94", "[27.79, 28.10]", "3.50", 3]
    assert t["tables"]["target"]["rows"][0][3:] == ["missed", "yes"]
    assert t["machine"] == {"cpu": "x"} and t["created"] == "2026-01-01T00:00:00Z"
    per_p = reports["quality_per_p"]["tables"]["per_p"]["rows"]
    assert [r[:4] for r in per_p] == [
        ["P=1", "not measured yet", "-", "-"],
        ["P=4 (default)", "2.54", "[2.10, 2.90]", "(default)"],
        ["P=16", "2.66", "[2.10, 2.90]", "yes"],
    ]
    assert per_p[1][-1] == "with-replacement bootstrap (biased up)"  # an interval without a method
    with pytest.raises(FileNotFoundError):
        collect(tmp_path / "nothing", tmp_path / "results")


def test_markers_in_code_are_examples_not_spans(tmp_path: Path) -> None:
    doc = (
        DOC
        + "\n```markdown\n<!-- results:demo/t -->\n| x |\n<!-- /results -->\n```\n"
        + "`<!-- r:demo:metrics.fid -->...<!-- /r -->`\n"
    )
    root = _repo(tmp_path, doc)
    assert rd.check_docs(root) == []
    assert rd.build_docs(root) == ([], [])


def test_collect_int8_report(tmp_path: Path) -> None:
    from bitdance.evaluation.results_collect import collect

    run = tmp_path / "eval"
    rec = {
        "command": "fid",
        "data": {"split": "test-heldout", "n": 3},
        "machine": {},
        "utc": "t",
        "sampling": {"parallel_num": 4},
    }
    for what, v, lo in (("fid-heldout", 2.5, 2.2), ("fid-heldout-int8", 3.5, 3.1)):
        res = {
            "features": {"cls": {"fid": v, "kid": 0.0, "fid_ci95": {"low": lo, "high": lo + 0.5}}},
            "n_fake": 3,
        }
        _raw(run / what, res, rec)
    mib = 2**20
    quant = {
        "model": "m",
        "options": {"model": "m", "scheme": "int8-dynamic", "samples": 64},
        "sizes": {
            "generator": {"fp32_bytes": 40 * mib, "int8_bytes": 11 * mib, "ratio": 0.275},
            "total": {"fp32_bytes": 50 * mib, "int8_bytes": 14 * mib, "ratio": 0.28},
        },
        "rss": {"status": "skipped (--no-rss)"},
        "speed": {"batch_1": {"fp32_images_per_s": 4.0, "int8_images_per_s": 5.6, "speedup": 1.4}},
        "agreement": {"bits_equal": 0.973, "samples": 64},
        "decoder_int8": {"psnr_change_db": 0.01},
        "encoder_int8": {"bits_equal": 0.9997},
        "targets": {
            "pipeline weights <= 30% of fp32": "met (28.0%)",
            ">= 1.5x images/s at batch 1": "MISSED (1.40x)",
            "adherence drop <= 2 points": "met (0.00)",
        },
    }
    (run / "quant.json").write_text(json.dumps(quant))
    collect(run, tmp_path / "results")
    rep = rd.load_reports(tmp_path / "results")["quantization"]
    t = rep["tables"]
    assert t["size"]["rows"][1] == ["total", "50.00", "14.00", "28.0%"]
    assert t["speed"]["rows"] == [["1", "4.00", "5.60", "1.40x"]] and "rss" not in t
    assert t["targets"]["rows"] == [
        ["pipeline weights <= 30% of fp32", "28.0%", "met"],
        [">= 1.5x images/s at batch 1", "1.40x", "missed"],
        [
            "FID_cls increase <= 10% (held-out captions)",
            "+40.0% (2.50 -> 3.50; intervals overlap: no)",
            "missed",
        ],
    ]
    assert rep["metrics"]["display"]["encoder_bits_equal"] == "99.97%"
