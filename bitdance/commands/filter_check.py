"""`bitdance filter-check "prompt"`: run the content filter on a prompt and print its verdict.

Exit codes: 0 allowed (also when only warned), 1 blocked, 2 bad input (empty or over-long prompt,
unknown mode, unreadable rule file). `-` reads the prompt from stdin.
"""

from __future__ import annotations

import json
import sys

from ._common import Parser


def build_parser() -> Parser:
    p = Parser(prog="bitdance filter-check", description="Run the content filter on a prompt.")
    p.add_argument("prompt", help="the prompt to check ('-' reads it from stdin)")
    p.add_argument(
        "--mode", default="block", choices=["block", "warn", "off"], help="filter mode (default block)"
    )
    p.add_argument("--rules", help="extra rule file (JSON/YAML) merged with the built-in rules")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument("--explain", action="store_true", help="print a longer explanation")
    return p


def main(argv: list[str]) -> int:
    from ..pipeline import MAX_PROMPT_CHARS  # noqa: PLC0415
    from ..safety import ContentFilter, RuleSet, explain, format_verdict  # noqa: PLC0415

    args = build_parser().parse_args(argv)
    prompt = sys.stdin.read().rstrip("\n") if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise ValueError("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
    rules = RuleSet.from_file(args.rules) if args.rules else None
    verdict = ContentFilter(rules, args.mode).check(prompt)
    if args.json:
        print(json.dumps(verdict.to_dict(), ensure_ascii=False, sort_keys=True))
    elif args.explain:
        print(explain(verdict))
    else:
        print(format_verdict(verdict))
    return 0 if verdict.allowed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
