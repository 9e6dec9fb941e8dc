"""One source of truth for documented numbers: docs quote committed reports ``docs/results/<name>.json``.

A report is ``{"name", "recipe", "machine", "created", "metrics": {...}, "tables": {id: {"columns",
"rows"}}}``. Docs embed a generated table as

    <!-- results:<name>/<table_id> -->
    | generated | markdown |
    <!-- /results -->

and an inline number as ``<!-- r:<name>:metrics.dotted.path -->0.93<!-- /r -->`` (optionally with a format,
``<!-- r:<name>:metrics.fid|.2f -->``). A table that may not be measured yet is marked
``<!-- results:<name>/<table_id> optional -->``: while its report or table is missing, the span says so
("not measured yet") instead of failing; numbers are never filled in by hand. ``build`` rewrites every
marked span of README.md and docs/*.md from the reports; ``check`` lists each span whose text differs from
its report, or whose report / path is missing.

    bitdance docs build [--root DIR] [--results DIR]
    bitdance docs check [--root DIR] [--results DIR]
    bitdance docs collect RUNS_EVAL [--out docs/results]   (raw evaluation reports -> committed reports)
    bitdance docs estimate RUNS_EVAL [--workers 2]   (full-run wall time from a SMOKE=1 run's timings)
    bitdance docs sampler-quality [--results docs/results]   (equal-quality table of the sampler settings)
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path("docs") / "results"
BLOCK_RE = re.compile(
    r"<!-- results:([\w.-]+)/([\w.-]+)(?: optional)? -->\n(.*?)<!-- /results -->", re.DOTALL
)
INLINE_RE = re.compile(r"<!-- r:([\w.-]+):([\w.\[\]-]+)(?:\|([^ ]+))? -->(.*?)<!-- /r -->", re.DOTALL)
SPAN_RE = re.compile(  # either kind, in one pass (line numbers refer to the file as read); code is skipped
    r"(?P<code>^```.*?^```|`[^`\n]*`)"
    r"|<!-- results:(?P<bname>[\w.-]+)/(?P<table>[\w.-]+)(?P<opt> optional)? -->\n"
    r"(?P<body>.*?)<!-- /results -->"
    r"|<!-- r:(?P<iname>[\w.-]+):(?P<path>[\w.\[\]-]+)(?:\|(?P<spec>[^ ]+))? -->(?P<value>.*?)<!-- /r -->",
    re.DOTALL | re.MULTILINE,
)


class ReportError(ValueError):
    """A marker names a report, table or path that does not exist."""


def doc_files(root: str | Path = ".") -> list[Path]:
    """The docs whose markers are generated: README.md and docs/*.md (sorted)."""
    root = Path(root)
    readme = [root / "README.md"] if (root / "README.md").is_file() else []
    return readme + sorted((root / "docs").glob("*.md"))


def load_reports(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Every ``<name>.json`` of ``folder`` by name; a file whose "name" differs from its stem is an error."""
    reports = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            rep = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ReportError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(rep, dict) or rep.get("name") != path.stem:
            raise ReportError(f'{path}: a report needs "name": {path.stem!r}')
        reports[path.stem] = rep
    return reports


def lookup(report: dict[str, Any], dotted: str) -> Any:  # noqa: ANN401
    """The value at ``a.b.2.c`` (dict keys, list indices) of a report."""
    node: Any = report
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            raise ReportError(f"report {report.get('name')!r} has no {dotted!r} (missing {part!r})")
    return node


def format_value(value: Any, spec: str | None = None) -> str:  # noqa: ANN401
    """Text of a reported value: ``spec`` (a format spec such as ``.2f``) for numbers, else the value as
    written (strings verbatim, ints as digits, floats in their shortest repr)."""
    if spec:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReportError(f"format {spec!r} needs a number, got {value!r}")
        return format(value, spec)
    if value is None:
        return "-"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render_table(table: dict[str, Any]) -> str:
    """A report table ``{"columns": [...], "rows": [[...], ...]}`` as a markdown table (ends with newline)."""
    cols, rows = table.get("columns"), table.get("rows")
    if not isinstance(cols, list) or not isinstance(rows, list):
        raise ReportError('a table needs "columns" and "rows" lists')
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        if len(row) != len(cols):
            raise ReportError(f"table row {row!r} has {len(row)} cells for {len(cols)} columns")
        lines.append("| " + " | ".join(format_value(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def _table(reports: dict[str, dict[str, Any]], name: str, table_id: str) -> str:
    if name not in reports:
        raise ReportError(f"no report {name!r} in {RESULTS_DIR}")
    tables = reports[name].get("tables") or {}
    if table_id not in tables:
        raise ReportError(f"report {name!r} has no table {table_id!r} (has: {', '.join(tables) or 'none'})")
    return render_table(tables[table_id])


def _has_table(reports: dict[str, dict[str, Any]], name: str, table_id: str) -> bool:
    return table_id in (reports.get(name, {}).get("tables") or {})


def not_measured(name: str, table_id: str) -> str:
    """The text of an optional table whose report (or table) does not exist yet."""
    return f"*Not measured yet: no table `{table_id}` in `docs/results/{name}.json`.*\n"


def _inline(reports: dict[str, dict[str, Any]], name: str, path: str, spec: str | None) -> str:
    if name not in reports:
        raise ReportError(f"no report {name!r} in {RESULTS_DIR}")
    return format_value(lookup(reports[name], path), spec)


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _walk(text: str, reports: dict[str, dict[str, Any]], note: Callable[[int, str, str, str], None]) -> str:
    """Replace every marked span with its report value; ``note(line, marker, old, new_or_error)`` is called
    for each span whose text differs (new text) or cannot be generated ("error: ...", text kept)."""

    def one(m: re.Match[str]) -> str:
        if m.group("code") is not None:  # examples in code are left as written
            return m.group(0)
        block = m.group("bname") is not None
        if block:
            marker = f"results:{m.group('bname')}/{m.group('table')}" + (m.group("opt") or "")
            old = m.group("body")
        else:
            spec, old = m.group("spec"), m.group("value")
            marker = f"r:{m.group('iname')}:{m.group('path')}" + (f"|{spec}" if spec else "")
        try:
            if block and m.group("opt") and not _has_table(reports, m.group("bname"), m.group("table")):
                new = not_measured(m.group("bname"), m.group("table"))
            elif block:
                new = _table(reports, m.group("bname"), m.group("table"))
            else:
                new = _inline(reports, m.group("iname"), m.group("path"), m.group("spec"))
        except ReportError as e:
            note(_line(text, m.start()), marker, old, f"error: {e}")
            return m.group(0)
        if new != old:
            note(_line(text, m.start()), marker, old, new)
        return f"<!-- {marker} -->\n{new}<!-- /results -->" if block else f"<!-- {marker} -->{new}<!-- /r -->"

    return SPAN_RE.sub(one, text)


def check_docs(root: str | Path = ".", results: str | Path | None = None) -> list[str]:
    """One line per marked span of the docs that differs from (or cannot be generated from) its report."""
    root = Path(root)
    reports = load_reports(results or root / RESULTS_DIR)
    problems: list[str] = []
    for path in doc_files(root):
        rel = path.relative_to(root)

        def note(line: int, marker: str, old: str, new: str, rel: Path = rel) -> None:
            if new.startswith("error: "):
                problems.append(f"{rel}:{line}: <!-- {marker} --> {new[7:]}")
            else:
                problems.append(
                    f"{rel}:{line}: <!-- {marker} --> shows {_short(old)}, report says {_short(new)}"
                )

        _walk(path.read_text(), reports, note)
    return problems


def build_docs(root: str | Path = ".", results: str | Path | None = None) -> tuple[list[str], list[str]]:
    """Rewrite every marked span from its report. Returns (changed files, errors); a span that cannot be
    generated is left as it is and reported, and its file is still written with the other spans."""
    root = Path(root)
    reports = load_reports(results or root / RESULTS_DIR)
    changed: list[str] = []
    errors: list[str] = []
    for path in doc_files(root):
        rel = path.relative_to(root)

        def note(line: int, marker: str, old: str, new: str, rel: Path = rel) -> None:
            if new.startswith("error: "):
                errors.append(f"{rel}:{line}: <!-- {marker} --> {new[7:]}")

        old = path.read_text()
        new = _walk(old, reports, note)
        if new != old:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(new)
            tmp.replace(path)
            changed.append(str(rel))
    return changed, errors


# A quoted measurement: a decimal number, or a number with a percent / times sign (28.7%, 1.40x, 36×);
# 32×32 is a size, not a ratio.
MEASURED_RE = re.compile(
    r"(?<![\w.])\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.])|(?<![\w.])\d+(?:\.\d+)?\s?(?:%|×(?!\d)|x\b)"
)
THRESHOLD_RE = re.compile(r"(?:≤|≥|<=|>=|<|>|±)\s*$")  # "≤ 30%": a target or threshold, not a measurement
_STRIP = (
    re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE),  # fenced code
    BLOCK_RE,  # generated tables
    INLINE_RE,  # generated numbers
    re.compile(r"<!--.*?-->", re.DOTALL),  # comments
    re.compile(r"`[^`\n]*`"),  # inline code: commands, options, file names
    re.compile(r"\]\([^)]*\)"),  # link and image targets
)


def unmarked_numbers(text: str, allowed: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """(line, number) of each quoted measurement outside markers: a decimal number or a number with %, x
    or × that is not in fenced or inline code, not a threshold (after <=, >=, <, >, ±, ≤, ≥) and not inside
    one of the ``allowed`` phrases (fixed settings such as "σ 1.5", each named by the caller)."""

    def blank(m: re.Match[str]) -> str:  # keep line numbers: replace the span by its newlines only
        return "\n" * m.group(0).count("\n")

    for rx in _STRIP:
        text = rx.sub(blank, text)
    found = []
    for i, line in enumerate(text.splitlines(), 1):
        for phrase in allowed:
            line = line.replace(phrase, " " * len(phrase))
        for m in MEASURED_RE.finditer(line):
            if not THRESHOLD_RE.search(line[: m.start()]):
                found.append((i, m.group(0)))
    return found


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= 60 else flat[:57] + "...")


def main(argv: list[str] | None = None) -> int:
    """`bitdance docs build|check|collect`."""
    from .cli import _Parser

    argv = list(sys.argv[1:] if argv is None else argv)
    p = _Parser(prog="bitdance docs", description="Docs generated from docs/results/*.json.")
    sub = p.add_subparsers(dest="what", required=True)
    for what, text in (("build", "rewrite every marked table/number"), ("check", "list docs that differ")):
        s = sub.add_parser(what, help=text)
        s.add_argument("--root", default=".", help="repository root (default .)")
        s.add_argument("--results", help=f"report folder (default ROOT/{RESULTS_DIR}; previews of a run)")
    c = sub.add_parser("collect", help="raw evaluation reports (runs/eval) -> docs/results/*.json")
    c.add_argument("runs", help="folder of an evaluation run (scripts/eval_default_model.sh's $EVAL)")
    c.add_argument("--out", default=str(RESULTS_DIR), help=f"report folder (default {RESULTS_DIR})")
    e = sub.add_parser("estimate", help="wall time of the full evaluation from a SMOKE=1 run's timings")
    e.add_argument("runs", help="folder of a smoke run (scripts/eval_default_model.sh with SMOKE=1)")
    e.add_argument("--workers", type=int, default=2, help="parallel processes of the full run (default 2)")
    q = sub.add_parser("sampler-quality", help="equal-quality table of the sampler settings (docs/speed.md)")
    q.add_argument("--results", default=str(RESULTS_DIR), help=f"report folder (default {RESULTS_DIR})")
    args = p.parse_args(argv)
    if args.what == "sampler-quality":
        from .sampler_quality import write_sampler_quality

        if not Path(args.results).is_dir():
            raise ValueError(f"no report folder {args.results!r}")
        path = write_sampler_quality(args.results)
        if path is None:
            raise ValueError(
                f"{args.results!r} lacks the reference's reports (quality_per_p.json with fid-heldout, "
                "adherence_freeform_p4.json); run scripts/eval_default_model.sh"
            )
        print(f"wrote {path}")
        return 0
    if args.what == "collect":
        from .results_collect import collect

        for path in collect(args.runs, args.out):
            print(f"wrote {path}")
        return 0
    if args.what == "estimate":
        from .eval_estimate import estimate_markdown

        print(estimate_markdown(args.runs, args.workers))
        return 0
    if args.results and not Path(args.results).is_dir():
        raise ValueError(f"no report folder {args.results!r}")
    if not args.results and not Path(args.root, RESULTS_DIR).is_dir():
        raise ValueError(f"no {RESULTS_DIR} under {args.root!r}; run from the repository root or give --root")
    if args.what == "check":
        problems = check_docs(args.root, args.results)
        for line in problems:
            print(line)
        if problems:
            print(f"{len(problems)} difference(s); run `bitdance docs build`", file=sys.stderr)
            return 1
        print("docs match their reports")
        return 0
    changed, errors = build_docs(args.root, args.results)
    for f in changed:
        print(f"rewrote {f}")
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
