"""`bitdance inspect IMAGE...`: print the generation recipe stored in PNGs (human-readable or --json)."""

from __future__ import annotations

import json
import sys
from typing import Any

from ._common import Parser


def build_parser() -> Parser:
    p = Parser(prog="bitdance inspect", description="Print the provenance metadata of generated PNGs.")
    p.add_argument("images", nargs="+", help="PNG files written by bitdance (or by tools writing A1111 info)")
    p.add_argument("--json", action="store_true", help="print the raw recipe JSON")
    return p


def describe_image(path: str) -> tuple[dict[str, Any], str]:
    """(JSON-ready metadata, human-readable text) of one PNG; ValueError when it has no metadata."""
    from ..pipeline.provenance import (  # noqa: PLC0415
        PARAMETERS_KEY,
        RECIPE_KEY,
        format_recipe,
        parse_parameters,
        read_png_text,
        read_recipe,
    )

    chunks = read_png_text(path)
    if RECIPE_KEY in chunks:
        recipe = read_recipe(path)
        return recipe, format_recipe(recipe, path)
    if PARAMETERS_KEY in chunks:
        text = chunks[PARAMETERS_KEY]
        human = f"file: {path}\n(not a bitdance image; A1111 parameters)\n{text}"
        return {"parameters": parse_parameters(text)}, human
    raise ValueError(f"{path} has no generation metadata (no 'bitdance' or 'parameters' text chunk)")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    described = [describe_image(p) for p in args.images]  # all readable before printing anything
    if args.json:
        data = [d for d, _ in described]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print("\n\n".join(text for _, text in described))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
