"""Committed reports from one evaluation run: ``runs/eval/<what>/report.json`` (the raw reports of
``scripts/eval_default_model.sh``) -> ``docs/results/<name>.json`` in the shared format (``results_docs``):
the raw numbers under "metrics", the recipe (command, model hash, data split, n, seeds) and the tables the
docs embed, rounded for display. Every value is read from a raw report; nothing is typed in here.

    bitdance docs collect runs/eval --out docs/results
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

# raw report folder (under the run folder) -> committed report name; missing folders are skipped
PSNR_TARGET_DB = 28.0  # the tokenizer target of issue 5


def _default_p(run: Path) -> dict[str, Any] | None:
    """The default-P quality run: `fid-heldout` (cls + effnet), else `fid-heldout-cls` (the same command with
    `--features cls` only, for a session without the time for the EfficientNet interval)."""
    return _raw(run, "fid-heldout") or _raw(run, "fid-heldout-cls")


def _raw(run: Path, what: str) -> dict[str, Any] | None:
    path = run / what / "report.json"
    if what.endswith(".json"):
        path = run / what
    return json.loads(path.read_text()) if path.is_file() else None


def _report(
    name: str, raw: dict[str, Any], metrics: dict[str, Any], tables: dict[str, Any], **recipe: Any
) -> dict:
    rec = dict(raw.get("recipe", {}))
    machine = rec.pop("machine", None)
    rec.pop("versions", None)
    created = rec.pop("utc", None) or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "name": name,
        "recipe": {**rec, **recipe},
        "machine": machine,
        "versions": raw.get("recipe", {}).get("versions"),
        "created": created,
        "metrics": metrics,
        "tables": tables,
    }


def _ci(ci: dict[str, Any] | None, digits: int) -> str:
    return f"[{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]" if ci else "-"


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> str:
    return "yes" if a["low"] <= b["high"] and b["low"] <= a["high"] else "no"


def tokenizer_report(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    r = raw["results"]
    n = r["images"]
    rows = [
        ["PSNR (dB)", f"{r['psnr_db']:.2f}", _ci(r.get("psnr_db_ci95"), 2), f"{r['psnr_db_std']:.2f}", n],
        ["SSIM", f"{r['ssim']:.4f}", _ci(r.get("ssim_ci95"), 4), f"{r['ssim_std']:.4f}", n],
    ]
    metrics = {k: v for k, v in r.items() if k not in ("bit_on_fraction", "groups")}
    cols = ["metric", "mean", "95% CI of the mean", "std over images", "n"]
    ci = r.get("psnr_db_ci95")
    target = [
        f"PSNR >= {PSNR_TARGET_DB:g} dB (issue 5)",
        f"{r['psnr_db']:.2f}",
        _ci(ci, 2),
        "met" if r["psnr_db"] >= PSNR_TARGET_DB else "missed",
        ("yes" if ci["low"] <= PSNR_TARGET_DB <= ci["high"] else "no") if ci else "-",
    ]
    tables = {
        "summary": {"columns": cols, "rows": rows},
        "target": {
            "columns": ["target", "measured", "95% CI", "status", "CI includes the target"],
            "rows": [target],
        },
    }
    return _report(name, raw, metrics, tables)


def _method(ci: dict[str, Any] | None) -> str:
    """Short name of how a FID interval was made (reports before the half-sample interval: biased)."""
    if not ci:
        return "-"
    return "half-samples" if ci.get("method") == "half-samples" else "with-replacement bootstrap (biased up)"


def _fid_cells(f: dict[str, Any], d: int) -> list[str]:
    return [f"{f['fid']:.{d}f}", _ci(f.get("fid_ci95"), d)]


def _extrapolated(f: dict[str, Any]) -> dict[str, Any] | None:
    ci = f.get("fid_ci95") or {}
    if "fid_infinity" not in ci:
        return None
    lo, hi = ci["fid_infinity_ci95"]
    return {"fid": max(ci["fid_infinity"], 0.0), "fid_ci95": {"low": lo, "high": hi}}


def quality_report(run: Path) -> dict[str, Any] | None:
    """FID / KID / IS on the held-out split at the default P, with the data-vs-data floor."""
    raw, floor = _default_p(run), _raw(run, "fid-floor")
    if raw is None:
        return None
    r, fl = raw["results"], (floor or {}).get("results", {})
    f, ff = r["features"], fl.get("features", {})
    n = r["n_fake"]
    rows = []
    for kind, label, d in (("cls", "FID_cls", 2), ("effnet", "FID_effnet", 1)):
        if kind in f:
            fl_c = _fid_cells(ff[kind], d + 1) if kind in ff else ["-", "-"]
            rows.append([label, *_fid_cells(f[kind], d), *fl_c, n, _method(f[kind].get("fid_ci95"))])
    for kind, label, d in (("cls", "FID_cls", 2), ("effnet", "FID_effnet", 1)):
        ext = _extrapolated(f[kind]) if kind in f else None
        if ext:
            fl_ext = _extrapolated(ff[kind]) if kind in ff else None
            fl_c = _fid_cells(fl_ext, d + 1) if fl_ext else ["-", "-"]
            label = f"{label} extrapolated to n = infinity (small-sample bias removed)"
            rows.append([label, *_fid_cells(ext, d), *fl_c, n, "half-samples, 1/n extrapolation"])
    for kind, label in (("cls", "KID_cls"), ("effnet", "KID_effnet")):
        if kind in f:
            fl_v = f"{ff[kind]['kid']:.5f}" if kind in ff else "-"
            rows.append([label, f"{f[kind]['kid']:.4f}", "-", fl_v, "-", n, "-"])
    c, fc = r.get("classifier", {}), fl.get("classifier", {})
    if "is_fake" in c:
        floor_is = f"{fc['is_fake']:.2f}" if "is_fake" in fc else "-"
        rows.append(["IS-style score (max 10)", f"{c['is_fake']:.2f}", "-", floor_is, "-", n, "-"])
    if "class_accuracy_fake" in c:
        floor_acc = f"{fc['class_accuracy_fake']:.3f}" if "class_accuracy_fake" in fc else "-"
        label = "classifier accuracy vs the caption's class (fraction)"
        rows.append([label, f"{c['class_accuracy_fake']:.3f}", "-", floor_acc, "-", n, "-"])
    cols = [
        "metric",
        "generated",
        "95% CI",
        "floor: train vs held-out items",
        "floor 95% CI",
        "n",
        "interval",
    ]
    metrics = {"generated": r, "floor": fl, "generated_key": raw["recipe"]["data"]}
    extra = {"floor_command": (floor or {}).get("recipe", {}).get("command")}
    return _report("quality_heldout", raw, metrics, {"quality": {"columns": cols, "rows": rows}}, **extra)


# FID_cls of every sampling setting, per comparison: (table id, [(raw folder or None = defaults, label)])
SETTINGS = (
    ("per_p", (("fid-heldout-p1", "P=1"), (None, "P=4 (default)"), ("fid-heldout-p16", "P=16"))),
    (
        "steps",
        (
            ("fid-heldout-s10", "10 head steps"),
            (None, "20 head steps (default)"),
            ("fid-heldout-s50", "50 head steps"),
        ),
    ),
    ("int8", ((None, "fp32 (default)"), ("fid-heldout-int8", "int8 (bitdance quantize defaults)"))),
    (  # the named sampler settings of docs/speed.md (their equal-quality verdict: sampler_quality.py)
        "sampler",
        (
            (None, "reference (default)"),
            ("fid-heldout-fast", "fast (em_fast, half the head steps)"),
            ("fid-heldout-fast4", "fast4 (em_fast, a quarter of the head steps)"),
        ),
    ),
)
SETTING_COLUMNS = [
    "setting",
    "FID_cls",
    "95% CI",
    "CI overlaps the default's",
    "classifier accuracy (fraction)",
    "n",
    "interval",
]
NOT_MEASURED = "not measured yet"


def per_p_report(run: Path) -> dict[str, Any] | None:
    """FID_cls on the held-out split for each P, head steps and int8 against the defaults (same items,
    seeds and classifier), and the data-vs-data floor; a setting without a run reads "not measured yet"."""
    base = _default_p(run)
    raws = {what: _raw(run, what) for _, rows in SETTINGS for what, _ in rows if what}
    if base is None and not any(raws.values()):
        return None
    b_ci = base["results"]["features"]["cls"].get("fid_ci95") if base else None
    tables: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    commands: dict[str, Any] = {}
    for table_id, settings in SETTINGS:
        rows = []
        for what, label in settings:
            raw = base if what is None else raws[what]
            if raw is None:
                rows.append([label, NOT_MEASURED, "-", "-", "-", "-", "-"])
                continue
            cls = raw["results"]["features"]["cls"]
            ci = cls.get("fid_ci95")
            over = "(default)" if what is None else (_overlap(ci, b_ci) if ci and b_ci else "-")
            acc = raw["results"].get("classifier", {}).get("class_accuracy_fake")
            n = raw["results"]["n_fake"]
            acc_s = f"{acc:.3f}" if acc is not None else "-"
            rows.append([label, *_fid_cells(cls, 2), over, acc_s, n, _method(ci)])
            key = what or "fid-heldout"
            sampling = raw["recipe"].get("sampling", {})
            metrics[key] = {
                "fid_cls": cls["fid"],
                "fid_cls_ci95": ci,
                "class_accuracy": acc,
                "n": n,
                "solver": sampling.get("solver"),
                "num_sampling_steps": sampling.get("num_sampling_steps"),
            }
            commands[key] = raw["recipe"]["command"]
        tables[table_id] = {"columns": SETTING_COLUMNS, "rows": rows}
    floor = _raw(run, "fid-floor")
    if floor is not None:
        ff = floor["results"]["features"]
        fg = base["results"]["features"] if base else {}
        rows = []
        for kind, label, d in (("cls", "FID_cls", 2), ("effnet", "FID_effnet", 1)):
            if kind not in ff:
                continue
            model = _fid_cells(fg[kind], d) if kind in fg else [NOT_MEASURED, "-"]
            rows.append([label, *_fid_cells(ff[kind], d + 1), *model, floor["results"]["n_fake"]])
            metrics.setdefault("floor", {})[kind] = {
                "fid": ff[kind]["fid"],
                "fid_ci95": ff[kind].get("fid_ci95"),
            }
        cols = ["metric", "floor: train vs held-out items", "95% CI", "model (defaults)", "95% CI", "n"]
        tables["floor"] = {"columns": cols, "rows": rows}
        commands["fid-floor"] = floor["recipe"]["command"]
    first = base or floor or next(v for v in raws.values() if v)
    return _report("quality_per_p", first, metrics, tables, command=None, commands=commands)


def _quant_tables(quant: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[list[str]]]:
    """Tables, metrics and target rows of a `bitdance quantize --report --json` file."""
    mib = 1 / 2**20
    tables: dict[str, Any] = {
        "size": {
            "columns": ["weights on disk", "fp32 MiB", "int8 MiB", "int8 / fp32"],
            "rows": [
                [part, f"{s['fp32_bytes'] * mib:.2f}", f"{s['int8_bytes'] * mib:.2f}", f"{s['ratio']:.1%}"]
                for part, s in quant["sizes"].items()
            ],
        },
        "speed": {
            "columns": ["batch", "fp32 images/s", "int8 images/s", "int8 / fp32"],
            "rows": [
                [
                    k.replace("batch_", ""),
                    f"{v['fp32_images_per_s']:.2f}",
                    f"{v['int8_images_per_s']:.2f}",
                    f"{v['speedup']:.2f}x",
                ]
                for k, v in quant["speed"].items()
            ],
        },
    }
    rss = quant.get("rss", {})
    if "fp32" in rss and "int8" in rss:
        tables["rss"] = {
            "columns": ["RSS (MiB, batch 1, fresh process)", "fp32", "int8"],
            "rows": [
                [k.replace("_mib", "").replace("_", " "), f"{rss['fp32'][k]:.0f}", f"{rss['int8'][k]:.0f}"]
                for k in ("peak_load_mib", "rss_after_load_mib", "peak_generate_mib")
            ],
        }
    keys = ("sizes", "rss", "speed", "agreement", "decoder_int8", "encoder_int8")
    metrics: dict[str, Any] = {k: quant[k] for k in keys if k in quant}
    a, dq, eq = quant["agreement"], quant["decoder_int8"], quant.get("encoder_int8") or {}
    metrics["display"] = {
        "bits_equal": f"{a['bits_equal']:.1%}",
        "agreement_samples": a["samples"],
        "decoder_psnr_change_db": f"{dq['psnr_change_db']:+.2f}",
        "encoder_bits_equal": f"{eq['bits_equal']:.2%}" if eq else "-",
        "pipeline_ratio": f"{quant['sizes']['total']['ratio']:.1%}" if "total" in quant["sizes"] else "-",
        "generator_ratio": f"{quant['sizes']['generator']['ratio']:.1%}",
    }
    rows = [
        _target_row(k, v)
        for k, v in quant.get("targets", {}).items()
        if "adherence" not in k and "FID" not in k  # those two come from 64 samples: not reported
    ]
    return tables, metrics, rows


def _int8_fid(fp: dict[str, Any], q: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """FID_cls of fp32 and int8 on the same held-out items and seeds: table, metrics and target row."""
    f32, f8 = fp["results"]["features"]["cls"], q["results"]["features"]["cls"]
    acc = [x["results"].get("classifier", {}).get("class_accuracy_fake") for x in (fp, q)]
    table = {
        "columns": ["weights", "FID_cls", "95% CI", "classifier accuracy (fraction)", "n"],
        "rows": [
            [
                label,
                f"{f['fid']:.2f}",
                _ci(f["fid_ci95"], 2),
                "-" if c is None else f"{c:.3f}",
                x["results"]["n_fake"],
            ]
            for label, f, c, x in (
                ("fp32", f32, acc[0], fp),
                ("int8 (bitdance quantize default)", f8, acc[1], q),
            )
        ],
    }
    over = _overlap(f32["fid_ci95"], f8["fid_ci95"])
    metrics = {
        "fp32": f32["fid"],
        "int8": f8["fid"],
        "fp32_ci95": f32["fid_ci95"],
        "int8_ci95": f8["fid_ci95"],
        "intervals_overlap": over,
        "commands": {"fp32": fp["recipe"]["command"], "int8": q["recipe"]["command"]},
    }
    inc = (f8["fid"] - f32["fid"]) / f32["fid"]
    row = [
        "FID_cls increase <= 10% (held-out captions)",
        f"{inc:+.1%} ({f32['fid']:.2f} -> {f8['fid']:.2f}; intervals overlap: {over})",
        "met" if inc <= 0.10 else "missed",
    ]
    return table, metrics, row


def int8_report(run: Path) -> dict[str, Any] | None:
    """Int8 (`bitdance quantize` default) vs fp32: the int8 report, and FID_cls on the held-out split."""
    fp, q, quant = _default_p(run), _raw(run, "fid-heldout-int8"), _raw(run, "quant.json")
    if quant is None and not (fp and q):
        return None
    tables, metrics, rows = _quant_tables(quant) if quant else ({}, {}, [])
    extra: dict[str, Any] = {}
    if quant:
        opts = quant["options"]
        extra["quantize_report_command"] = (
            f"bitdance quantize --report --model {opts['model']} --scheme {opts['scheme']} "
            f"--samples {opts['samples']}"
        )
    if fp and q:
        tables["fid_cls"], metrics["fid_cls"], row = _int8_fid(fp, q)
        rows.append(row)
    if rows:
        tables["targets"] = {"columns": ["target", "measured", "status"], "rows": rows}
    base = q if (fp and q) else {"recipe": {"command": extra["quantize_report_command"]}}
    rep = _report("quantization", base, metrics, tables, **extra)
    if quant:
        rep["recipe"]["model"] = quant["model"]
    return rep


def _target_row(target: str, verdict: str) -> list[str]:
    """A `quantize --report` verdict ("met (28.7%)", "MISSED (1.40x)") -> [target, measured, status]."""
    m = re.fullmatch(r"(\w+) \((.*)\)", verdict)
    return [target, m.group(2), m.group(1).lower()] if m else [target, "-", verdict]


def speed_report(run: Path) -> dict[str, Any] | None:
    raw = _raw(run, "bench")
    if raw is None:
        return None
    r = raw["results"]
    rows = []
    for x in r["rows"]:
        util = (
            f"{x['achieved_gflops']:.1f} ({x['fraction_of_matmul_peak']:.0%})"
            if "achieved_gflops" in x
            else "-"
        )
        rows.append(
            [
                x["parallel_num"],
                x["batch_size"],
                f"{x['images_per_second']:.2f}",
                f"{x['seconds_per_image']:.3f}",
                f"{x['speedup_vs_smallest_p']:.2f}",
                x["ar_steps_per_image"],
                x["head_evaluations_per_image"],
                f"{x['gflop_per_image']:.2f}" if "gflop_per_image" in x else "-",
                util,
                f"{x['peak_rss_mib']:.0f}",
            ]
        )
    cols = [
        "P",
        "batch",
        "images/s",
        "s/image",
        "speed-up vs P=1",
        "AR steps/img",
        "head evals/img",
        "GFLOP/img",
        "achieved GFLOP/s (of peak)",
        "peak RSS MiB",
    ]
    metrics = {
        **{k: v for k, v in r.items() if k != "rows"},
        "rows": r["rows"],
        "display": {"peak_gflops": f"{r['peak_gflops']:.1f}"},
    }
    return _report("speed", raw, metrics, {"speed": {"columns": cols, "rows": rows}})


def collect(run: str | Path, out: str | Path) -> list[Path]:
    """Write every committed report the run folder has the raw reports for; returns the written paths."""
    from ..checkpoint import atomic_write_bytes

    run, out = Path(run), Path(out)
    if not run.is_dir():
        raise FileNotFoundError(
            f"no evaluation run folder {str(run)!r} (scripts/eval_default_model.sh writes one)"
        )
    reps = [quality_report(run), per_p_report(run), int8_report(run), speed_report(run)]
    for what, name in (
        ("tokenizer-heldout", "tokenizer_heldout"),
        ("tokenizer-steered", "tokenizer_steered"),
    ):
        raw = _raw(run, what)
        reps.append(tokenizer_report(name, raw) if raw else None)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for rep in reps:
        if rep is None:
            continue
        path = out / f"{rep['name']}.json"
        atomic_write_bytes(path, (json.dumps(rep, indent=1, sort_keys=False, default=str) + "\n").encode())
        written.append(path)
    if not written:
        raise FileNotFoundError(
            f"{str(run)!r} holds none of the raw reports scripts/eval_default_model.sh writes"
        )
    return written
