"""`bitdance filter-check "prompt"`: run the content filter on a prompt and print its verdict.

    bitdance filter-check "a photo of a cat" [--explain | --json]
    bitdance filter-check --suite redteam --report docs/results/safety_redteam.json

Exit codes: 0 allowed (also when only warned), 1 blocked, 2 bad input (empty or over-long prompt,
unknown mode, unreadable rule file). `-` reads the prompt from stdin. `--suite` measures the filter on
a red-team suite (the shipped one, or a JSONL path) and prints or writes a results report; exit 0.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ._common import Parser


def build_parser() -> Parser:
    p = Parser(prog="bitdance filter-check", description="Run the content filter on a prompt.")
    p.add_argument("prompt", nargs="?", help="the prompt to check ('-' reads it from stdin)")
    p.add_argument(
        "--mode", default="block", choices=["block", "warn", "off"], help="filter mode (default block)"
    )
    p.add_argument("--rules", help="extra rule file (JSON/YAML) merged with the built-in rules")
    p.add_argument("--no-semantic", action="store_true", help="keyword rules only (skip the semantic layer)")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument("--explain", action="store_true", help="print a longer explanation")
    p.add_argument("--suite", help="measure a red-team suite: 'redteam' (shipped) or a JSONL path")
    p.add_argument(
        "--split",
        "--splits",
        default="all",
        help="'all' (default) or a comma list of suite splits: dev, test, dev2, test2, dev3, test3, dev4, "
        "test4 (dev4 and test4 are held out: reported only)",
    )
    p.add_argument("--report", help="with --suite: write the results report (JSON) here")
    return p


def main(argv: list[str]) -> int:
    from ..pipeline import MAX_PROMPT_CHARS  # noqa: PLC0415
    from ..safety import ContentFilter, RuleSet, explain, format_verdict  # noqa: PLC0415

    args = build_parser().parse_args(argv)
    if (args.suite is None) == (args.prompt is None):
        raise ValueError("give either a prompt or --suite (not both)")
    wanted_splits(args.split)
    if args.report and not args.suite:
        raise ValueError("--report needs --suite")
    rules = RuleSet.from_file(args.rules) if args.rules else None
    flt = ContentFilter(rules, args.mode, semantic=None if args.no_semantic else "builtin")
    if args.suite:
        report = run_suite(flt, args.suite, args.split, ["bitdance", "filter-check", *argv], args.report)
        for split, r in report["metrics"]["splits"].items():
            print(
                f"{split}: blocked {_pct(r['blocked'])}% of {r['n_block']} {_ci(r['blocked_ci95'])}, false "
                f"positives {_pct(r['false_positive'])}% of {r['n_allow']} {_ci(r['false_positive_ci95'])}"
            )
        if args.report:
            print(f"report: {args.report}")
        return 0
    prompt = sys.stdin.read().rstrip("\n") if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise ValueError("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
    verdict = flt.check(prompt)
    if args.json:
        print(json.dumps(verdict.to_dict(), ensure_ascii=False, sort_keys=True))
    elif args.explain:
        print(explain(verdict))
    else:
        print(format_verdict(verdict))
    return 0 if verdict.allowed else 1


EVAL_PROMPTS = (
    "prompts_default.jsonl",
    "prompts_paraphrase.jsonl",
    "prompts_emoji_monitor.jsonl",
    "prompts_shapes_monitor.jsonl",
)


def run_suite(
    flt: Any, suite: str, split: str, command: list[str], report_path: str | None
) -> dict[str, Any]:
    """Measure `flt` on a red-team suite (and, as everyday benign prompts, the shipped eval prompt lists)."""
    import datetime as dt  # noqa: PLC0415
    from importlib import resources  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    import torch  # noqa: PLC0415

    from ..checkpoint import atomic_write_bytes  # noqa: PLC0415
    from ..evaluation.report import machine_info  # noqa: PLC0415
    from ..safety.redteam import SUITE_FILE, Case, failures, load_suite, measure, summarize  # noqa: PLC0415
    from ..safety.semantic import assets_dir, sha256_file  # noqa: PLC0415

    torch.set_num_threads(1)
    path = assets_dir() / SUITE_FILE if suite == "redteam" else Path(suite)
    if not path.is_file():
        raise ValueError(f"--suite must be 'redteam' or a JSONL file; {path} is not a file")
    cases = [c for c in load_suite(path) if c.split in wanted_splits(split)]
    t0 = time.perf_counter()
    if flt.mode != "off" and flt.semantic is not None:
        flt.check("warm up: load the encoder")
    load_s = time.perf_counter() - t0
    blocked, rules, seconds = measure(flt, cases)
    metrics: dict[str, Any] = summarize(cases, blocked, rules)
    eval_dir = resources.files("bitdance") / "assets" / "eval"
    everyday = [
        Case(json.loads(line)["prompt"], "allow", "everyday", "everyday", "eval_prompts")
        for name in EVAL_PROMPTS
        for line in (eval_dir / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    e_blocked, e_rules, e_seconds = measure(flt, everyday)
    fp = sum(e_blocked)
    from ..safety.redteam import wilson  # noqa: PLC0415

    metrics["everyday_prompts"] = {
        "false_positive": round(fp / len(everyday), 4),
        "false_positive_ci95": [round(x, 4) for x in wilson(fp, len(everyday))],
        "n_allow": len(everyday),
    }
    ms = sorted(1000 * s for s in seconds + e_seconds)
    metrics["latency_ms"] = {
        "median": round(ms[len(ms) // 2], 2),
        "p95": round(ms[int(0.95 * (len(ms) - 1))], 2),
        "max": round(ms[-1], 2),
        "encoder_load_s": round(load_s, 2),
        "n": len(ms),
    }
    sem = flt.semantic
    recipe = {
        "command": " ".join(command),
        "suite": path.name,
        "suite_sha256": sha256_file(path),
        "split": split,
        "n": len(cases),
        "rules_sha256": sha256_file(Path(str(resources.files("bitdance") / "assets" / "safety_rules.json"))),
        "mode": flt.mode,
        "semantic": None if sem is None else {
            "index_sha256": sha256_file(assets_dir() / "semantic_index.safetensors"),
            "threshold": sem.threshold, "margin": sem.margin, "examples": len(sem.texts),
        },
        "everyday_prompts": list(EVAL_PROMPTS),
        "torch_threads": 1,
    }  # fmt: skip
    tables = {
        "rates": {
            "columns": [
                "split",
                "blocked (%)",
                "95% CI",
                "n must-block",
                "false positives (%)",
                "95% CI",
                "n benign",
            ],
            "rows": [],
        }
    }
    for name, r in metrics["splits"].items():
        tables["rates"]["rows"].append([
            name, _pct(r["blocked"]), _ci(r["blocked_ci95"]), r["n_block"],
            _pct(r["false_positive"]), _ci(r["false_positive_ci95"]), r["n_allow"],
        ])  # fmt: skip
    e = metrics["everyday_prompts"]
    tables["rates"]["rows"].append(
        [
            "everyday (eval prompt lists)",
            "-",
            "-",
            0,
            f"{100 * e['false_positive']:.1f}",
            _ci(e["false_positive_ci95"]),
            e["n_allow"],
        ]
    )
    for key in ("by_category", "by_tactic"):
        cols = ["split", key[3:], "blocked (%)", "n must-block", "false positives (%)", "n benign"]
        rows = []
        for name, groups in metrics[key].items():
            for g, r in groups.items():
                rows.append(
                    [name, g, _pct(r["blocked"]), r["n_block"], _pct(r["false_positive"]), r["n_allow"]]
                )
        tables[key] = {"columns": cols, "rows": rows}
    report = {
        "name": Path(report_path).stem if report_path else "safety_redteam",  # docs cite it by file name
        "recipe": recipe,
        "machine": machine_info("cpu"),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": metrics,
        "tables": tables,
        "failures": failures(cases, blocked, rules) + failures(everyday, e_blocked, e_rules),
    }
    if report_path:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(report, indent=1, ensure_ascii=False) + "\n"
        atomic_write_bytes(Path(report_path), text.encode("utf-8"))
    return report


def wanted_splits(split: str) -> tuple[str, ...]:
    """The splits named by --split: 'all' or a comma list of suite splits."""
    from ..safety.redteam import SPLITS  # noqa: PLC0415

    names = SPLITS if split == "all" else tuple(s.strip() for s in split.split(","))
    bad = [s for s in names if s not in SPLITS]
    if bad or not names:
        raise ValueError(f"--split must be 'all' or a comma list of {', '.join(SPLITS)}; got {split!r}")
    return names


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(ci: list[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
