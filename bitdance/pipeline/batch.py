"""Batch generation from a JSONL or CSV file: planning, sharding over ranks, resumable execution.

One row per prompt (JSONL: one object per line; CSV: a header row). Columns:
    prompt     text prompt (text models), or
    template   template name, with the template's variables as further columns (or --template for all rows)
    negative   negative prompt            seed   explicit seed of the row's first image
    class      class index or name (class-conditional models)
    name       output file stem (default: <item index, 5 digits>-<seed>)
Each row gives `n` images ("items", numbered in file order). Item k's seed is the row's `seed` + j (its j-th
image) or else base_seed + k, so it depends on the item, never on the process that makes it. Under
`torchrun` rank r of W takes the items with k % W == r. An item is skipped when its output PNG exists and
its recipe matches the plan (resume after an interruption); files are written atomically.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .provenance import make_recipe, read_recipe, recipe_matches
from .templates import TemplateSet

RESERVED = ("prompt", "template", "negative", "seed", "class", "name")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_ROWS = 1_000_000


@dataclass
class BatchItem:
    """One image to make: its global index, where it came from, its inputs and its output path."""

    index: int
    source: str  # "prompts.jsonl:3"
    prompt: str | None
    negative: str | None
    class_label: int | str | None
    seed: int
    path: Path


def read_rows(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a .jsonl / .csv file as (source "file:line", mapping); malformed input raises ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompts file {path} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read prompts file {path}: {e}") from None
    rows: list[tuple[str, dict[str, Any]]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or any(not (f or "").strip() for f in reader.fieldnames):
            raise ValueError(f"{path}: the first line must be a header of column names (e.g. prompt,seed)")
        for i, rec in enumerate(reader, start=2):
            if None in rec:
                raise ValueError(f"{path}:{i}: more cells than header columns")
            row = {k.strip(): v for k, v in rec.items() if v is not None and v != ""}
            if row:
                rows.append((f"{path.name}:{i}", row))
    elif path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path}:{i}: invalid JSON ({e.msg}); write one JSON object per line"
                ) from None
            if not isinstance(row, dict):
                raise ValueError(f'{path}:{i}: expected a JSON object like {{"prompt": "a red sneaker"}}')
            rows.append((f"{path.name}:{i}", row))
    else:
        raise ValueError(f"prompts file {path} must end in .jsonl or .csv")
    if not rows:
        raise ValueError(f"prompts file {path} has no rows")
    if len(rows) > MAX_ROWS:
        raise ValueError(f"prompts file {path} has {len(rows)} rows; the limit is {MAX_ROWS}")
    return rows


def _int(value: Any, what: str, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"{where}: {what} must be an integer in [0, 2^63), got {value!r}")
    return value


def _str(value: Any, what: str, where: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{where}: {what} must be a string, got {value!r}")
    return value


def plan_items(
    rows: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    out_dir: str | Path,
    text_model: bool,
    templates: TemplateSet | None = None,
    template: str | None = None,
    variables: Mapping[str, str] | None = None,
    n: int = 1,
    base_seed: int = 0,
    negative: str | None = None,
    class_label: int | str | None = None,
) -> list[BatchItem]:
    """Expand rows into items (n per row) with prompts rendered, seeds assigned and output paths chosen."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
        raise ValueError(f"--n (images per prompt) must be an integer in 1..64, got {n!r}")
    base_seed = _int(base_seed, "--seed", "command line")
    templates = templates or TemplateSet.builtin()
    if template is not None:
        templates.get(template)  # unknown template: fail before anything else
    items: list[BatchItem] = []
    seen: dict[Path, str] = {}
    for where, row in rows:
        tmpl = row.get("template", template)
        extra = {k: v for k, v in row.items() if k not in RESERVED}
        prompt = None
        if text_model:
            if "class" in row:
                raise ValueError(
                    f"{where}: 'class' is for class-conditional models; this model takes prompts"
                )
            if "prompt" in row and "template" in row:
                raise ValueError(f"{where}: give either 'prompt' or 'template', not both")
            if "prompt" in row:
                if extra:
                    raise ValueError(
                        f"{where}: unknown column {sorted(extra)[0]!r}; allowed columns: "
                        f"{', '.join(RESERVED)} (template variables need a template)"
                    )
                prompt = _str(row["prompt"], "prompt", where)
            elif tmpl is not None:
                values = {
                    **(variables or {}),
                    **{k: _str(v, f"variable {k!r}", where) for k, v in extra.items()},
                }
                try:
                    prompt = templates.render(_str(tmpl, "template", where), values)
                except ValueError as e:
                    raise ValueError(f"{where}: {e}") from None
            else:
                raise ValueError(f"{where}: no 'prompt' (or 'template' / --template with variables)")
            neg = _str(row["negative"], "negative", where) if "negative" in row else negative
            label = None
        else:
            bad = sorted(set(row) - {"class", "seed", "name"})
            if bad:
                raise ValueError(
                    f"{where}: column {bad[0]!r} is not used by a class-conditional model; "
                    "allowed: class, seed, name"
                )
            label = row.get("class", class_label)
            if label is None:
                raise ValueError(f"{where}: no 'class' column and no --class")
            if isinstance(label, str) and label.strip().isdigit():
                label = int(label)
            neg = None
        seed0 = _int(row["seed"], "seed", where) if "seed" in row else None
        name = _str(row["name"], "name", where) if "name" in row else None
        if name is not None and not _NAME.fullmatch(name):
            raise ValueError(f"{where}: name {name!r} must be letters, digits, '.', '_' or '-' (no folders)")
        for j in range(n):
            k = len(items)
            seed = seed0 + j if seed0 is not None else base_seed + k
            stem = (name if n == 1 else f"{name}-{j}") if name else f"{k:05d}-{seed}"
            path = Path(out_dir) / f"{stem}.png"
            if path in seen:
                raise ValueError(
                    f"{where}: output {path} is also written by {seen[path]}; make the names unique"
                )
            seen[path] = where
            items.append(BatchItem(k, where, prompt, neg, label, seed, path))
    return items


def dist_info(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(rank, world size) from the torchrun environment (RANK / WORLD_SIZE); (0, 1) when absent."""
    env = os.environ if env is None else env
    try:
        rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError("RANK and WORLD_SIZE must be integers (they are set by torchrun)") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"invalid RANK={rank} / WORLD_SIZE={world}")
    return rank, world


def shard(items: Sequence[BatchItem], rank: int, world: int) -> list[BatchItem]:
    """The items of one rank: every world-th item starting at `rank` (by item index)."""
    return [it for it in items if it.index % world == rank]


def check_items(pipe: Any, items: Sequence[BatchItem], mode: str | None = None) -> list[Any]:
    """Validate every prompt / class label and run the content filter before any work; errors name the row.

    Returns the verdicts that flagged a prompt without blocking it (warn mode), one per distinct prompt.
    """
    from ..generator.text_encoder import check_prompts  # noqa: PLC0415
    from . import MAX_PROMPT_CHARS  # noqa: PLC0415

    done: set[str] = set()
    flagged = []
    for it in items:
        if it.prompt is None:
            try:
                pipe._class_index(it.class_label)
            except ValueError as e:
                raise ValueError(f"{it.source}: {e}") from None
            continue
        if it.prompt in done:
            continue
        try:
            check_prompts([it.prompt], MAX_PROMPT_CHARS)
            verdict = pipe.check_prompts_filter([it.prompt], mode)[0]
        except ValueError as e:
            if it.source != "command line":
                e.args = (f"{it.source}: {e}",)
            raise
        if getattr(verdict, "flagged", False):
            flagged.append(verdict)
        done.add(it.prompt)
    return flagged


def planned_recipe(pipe: Any, item: BatchItem, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe an item will get (pixel-deciding fields), for the resume check."""
    label = None if item.class_label is None else pipe._class_index(item.class_label)
    return make_recipe(
        settings, prompt=item.prompt, negative_prompt=item.negative, class_label=label, seed=item.seed
    )


def is_done(pipe: Any, item: BatchItem, settings: Mapping[str, Any]) -> bool:
    """True when the item's PNG exists and its recipe matches what would be generated now."""
    if not item.path.is_file():
        return False
    try:
        return recipe_matches(read_recipe(item.path), planned_recipe(pipe, item, settings))
    except (ValueError, OSError):
        return False


def run_items(
    pipe: Any,
    items: Sequence[BatchItem],
    call_kwargs: Mapping[str, Any],
    *,
    resume: bool = True,
    batch_size: int = 1,
    callback: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> list[tuple[BatchItem, str]]:
    """Generate and save `items` (skipping finished ones when `resume`); returns (item, status) pairs.

    `call_kwargs` are pipeline settings (height, width, num_sampling_steps, guidance_scale, ...,
    filter_mode, upscale, color). Items are generated `batch_size` at a time; each image has its own
    seed, so results do not depend on the batching. `callback(done, total, step_info)` reports progress.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 64:
        raise ValueError(f"batch size must be an integer in 1..64, got {batch_size!r}")
    keys = (
        "height",
        "width",
        "num_sampling_steps",
        "guidance_scale",
        "guidance_schedule",
        "parallel_num",
        "solver",
        "upscale",
        "upscale_method",
        "color",
    )
    settings = pipe.resolve_settings(**{k: call_kwargs[k] for k in keys if k in call_kwargs})
    results: list[tuple[BatchItem, str]] = []
    todo = []
    for it in items:
        if resume and is_done(pipe, it, settings):
            results.append((it, "skipped"))
        else:
            if it.path.exists():
                print(f"note: replacing {it.path} (its recipe differs from this run)", file=sys.stderr)
            todo.append(it)
    chunks: list[list[BatchItem]] = []
    for it in todo:  # consecutive items with the same kind of conditioning share a call
        if (
            chunks
            and len(chunks[-1]) < batch_size
            and (chunks[-1][0].negative is None) == (it.negative is None)
        ):
            chunks[-1].append(it)
        else:
            chunks.append([it])
    done = 0
    for chunk in chunks:
        kw = dict(call_kwargs)
        if chunk[0].prompt is not None:
            kw["prompt"] = [it.prompt for it in chunk]
            if chunk[0].negative is not None:
                kw["negative_prompt"] = [it.negative for it in chunk]
        else:
            kw["class_labels"] = [it.class_label for it in chunk]
        base = done

        def report(info: dict[str, Any], base: int = base) -> None:
            if callback is not None:
                callback(base, len(todo), info)

        out = pipe(seed=[it.seed for it in chunk], callback=report, **kw)
        for i, it in enumerate(chunk):
            out.save(it.path, i)
            results.append((it, "written"))
        done += len(chunk)
    results.sort(key=lambda r: r[0].index)
    return results
