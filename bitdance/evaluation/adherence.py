"""GenEval-style prompt adherence, deterministic and offline: generate each suite prompt with several
seeds, then check the image against the prompt's structured expectation.

- shapes: analytic detectors (``detectors.py``): shape, colour, size, absolute position, exact count,
  spatial relation between two described objects;
- fashion: the project's Fashion-MNIST classifier (top-1 class) + the colour of the non-black pixels;
- emoji: the project's emoji classifier (top-1 lower-cased Unicode name).

An image is correct when every stated attribute holds. Reported: accuracy per category, overall (mean of
the category accuracies, as GenEval does) and the plain mean over all images.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data.items import pil_to_tensor
from .detectors import DetectedObject, as_uint8_image, detect_objects, foreground_colour, relation_holds
from .prompts import DOMAINS, PromptSpec


def _matches(obj: DetectedObject, want: dict[str, Any], with_location: bool = True) -> bool:
    if obj.shape != want["shape"] or ("colour" in want and obj.colour != want["colour"]):
        return False
    if with_location and "size" in want and obj.size != want["size"]:
        return False
    return not (with_location and "position" in want and obj.position != want["position"])


def check_shapes(objects: list[DetectedObject], expect: dict[str, Any]) -> tuple[bool, str]:
    """Judge detected objects against a shapes expectation -> (correct, reason when wrong)."""
    wants = expect["objects"]
    if "relation" in expect:
        a_list = [o for o in objects if _matches(o, wants[0])]
        b_list = [o for o in objects if _matches(o, wants[1])]
        if not a_list or not b_list:
            missing = 0 if not a_list else 1
            return False, f"no {_describe(wants[missing])} found"
        ok = any(relation_holds(a, b, expect["relation"]) for a in a_list for b in b_list if a is not b)
        return ok, "" if ok else f"relation '{expect['relation']}' does not hold"
    for want in wants:
        found = [o for o in objects if _matches(o, want)]
        if "count" in want:
            if len(found) != want["count"]:
                return False, f"found {len(found)} {_describe(want)}, expected {want['count']}"
        elif not found:
            near = [o for o in objects if _matches(o, want, with_location=False)]
            if near:
                return (
                    False,
                    f"{_describe(want)} has the wrong size or position ({near[0].size}, {near[0].position})",
                )
            return False, f"no {_describe(want)} found"
    return True, ""


def _describe(want: dict[str, Any]) -> str:
    return " ".join(str(want[k]) for k in ("size", "colour", "shape") if k in want)


class AdherenceScorer:
    """Scores images against expectations; classifiers are loaded lazily (shipped ones by default)."""

    def __init__(self, fashion: torch.nn.Module | None = None, emoji: torch.nn.Module | None = None) -> None:
        self._models: dict[str, torch.nn.Module | None] = {"fashion": fashion, "emoji": emoji}

    def classifier(self, task: str) -> torch.nn.Module:
        if self._models.get(task) is None:
            from .classifier import load_classifier

            self._models[task] = load_classifier(task)
        return self._models[task]  # type: ignore[return-value]

    def classify(self, task: str, images: list[np.ndarray]) -> list[str]:
        """Class names the `task` ("fashion" / "emoji") classifier gives the images (uint8 arrays)."""
        model = self.classifier(task)
        x = torch.stack([pil_to_tensor(_pil(a)) for a in images])
        idx = model.predict(x).argmax(-1).tolist()
        return [model.config.class_names[i] for i in idx]

    def score(
        self, images: Sequence[Any], expects: Sequence[dict[str, Any]]
    ) -> list[tuple[bool, dict[str, Any]]]:
        """Score images (PIL / uint8 arrays / tensors in [-1, 1]) against expectations, batched per domain."""
        if len(images) != len(expects):
            raise ValueError(f"{len(images)} images but {len(expects)} expectations")
        arrays = [as_uint8_image(im) for im in images]
        out: list[tuple[bool, dict[str, Any]] | None] = [None] * len(arrays)
        by_domain: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(expects):
            if not isinstance(e, dict) or e.get("domain") not in DOMAINS:
                raise ValueError(f"expectation {i} needs a domain in {list(DOMAINS)} (schema: prompts.py)")
            by_domain[e["domain"]].append(i)
        for i in by_domain.get("shapes", []):
            objs = detect_objects(arrays[i])
            ok, why = check_shapes(objs, expects[i])
            out[i] = (ok, {"reason": why, "detected": [o.to_dict() for o in objs][:8]})
        for domain, task, key in (("fashion", "fashion", "class"), ("emoji", "emoji", "name")):
            idx = by_domain.get(domain, [])
            if not idx:
                continue
            preds = self.classify(task, [arrays[i] for i in idx])
            for i, pred in zip(idx, preds):
                e = expects[i]
                ok, why, detail = pred == e[key], "", {"predicted": pred}
                if not ok:
                    why = f"classified as {pred!r}"
                if domain == "fashion" and "colour" in e:
                    colour = foreground_colour(arrays[i])
                    detail["colour"] = colour
                    if colour != e["colour"]:
                        ok, why = False, (why + "; " if why else "") + f"colour looks {colour}"
                out[i] = (ok, {"reason": why, **detail})
        return out  # type: ignore[return-value]


def _pil(a: np.ndarray):  # noqa: ANN202
    from PIL import Image

    return Image.fromarray(a, "RGB")


def summarize(records: list[dict[str, Any]], by_split: bool = True) -> dict[str, Any]:
    """records: one per image with 'category', 'correct', 'prompt_index' (and optional 'split') ->
    accuracies with n and 95 % bootstrap intervals over prompts x seeds (``intervals.py``); when records
    carry a split, the same summary per split under "splits"."""
    from .intervals import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_accuracy

    per_cat: dict[str, list[bool]] = defaultdict(list)
    per_prompt: dict[int, list[bool]] = defaultdict(list)
    prompt_cat: dict[int, str] = {}
    for r in records:
        per_cat[r["category"]].append(bool(r["correct"]))
        per_prompt[r["prompt_index"]].append(bool(r["correct"]))
        prompt_cat[r["prompt_index"]] = r["category"]
    outcomes: dict[str, list[list[bool]]] = defaultdict(list)
    for i, v in sorted(per_prompt.items()):
        outcomes[prompt_cat[i]].append(v)
    cat_ci, overall_ci, image_ci = (
        bootstrap_accuracy(outcomes) if records else ({}, (float("nan"),) * 2, (float("nan"),) * 2)
    )
    cats = {
        c: {
            "accuracy": float(np.mean(v)),
            "ci95": list(cat_ci[c]),
            "images": len(v),
            "prompts": len(outcomes[c]),
        }
        for c, v in sorted(per_cat.items())
    }
    out = {
        "overall": float(np.mean([c["accuracy"] for c in cats.values()])) if cats else float("nan"),
        "overall_ci95": list(overall_ci),
        "image_accuracy": float(np.mean([r["correct"] for r in records])) if records else float("nan"),
        "image_accuracy_ci95": list(image_ci),
        "prompt_accuracy": {int(k): float(np.mean(v)) for k, v in sorted(per_prompt.items())},
        "categories": cats,
        "images": len(records),
        "prompts": len(per_prompt),
        "bootstrap": {
            "resamples": BOOTSTRAP_RESAMPLES,
            "seed": BOOTSTRAP_SEED,
            "unit": "prompts per category, then seeds within each prompt",
            "interval": "2.5-97.5 percentile",
        },
    }
    splits = sorted({r["split"] for r in records if r.get("split")})
    if by_split and splits:
        out["splits"] = {
            sp: summarize([r for r in records if r.get("split") == sp], by_split=False) for sp in splits
        }
    return out


def evaluate_adherence(
    pipe: Any,
    specs: Sequence[PromptSpec],
    seeds: Sequence[int] = (0, 1, 2, 3),
    batch_size: int = 16,
    sampling: dict[str, Any] | None = None,
    scorer: AdherenceScorer | None = None,
    keep_images: int = 32,
) -> dict[str, Any]:
    """Generate ``len(seeds)`` images per prompt (image j of prompt i uses seed seeds[j]) and score them.

    Returns {"summary", "records", "samples" (first ``keep_images`` (image, correct, prompt)), "seconds"}."""
    if pipe.generator.config.cond_type != "text":
        raise ValueError("adherence evaluation needs a text-to-image model (this one is class-conditional)")
    if not seeds:
        raise ValueError("give at least one seed")
    if not 1 <= batch_size <= 64:
        raise ValueError(f"batch_size must be in 1..64, got {batch_size}")
    scorer = scorer or AdherenceScorer()
    jobs = [(i, s) for i in range(len(specs)) for s in seeds]
    records: list[dict[str, Any]] = []
    samples: list[tuple[Any, bool, str]] = []
    start = time.perf_counter()
    gen_seconds = 0.0
    for lo in range(0, len(jobs), batch_size):
        chunk = jobs[lo : lo + batch_size]
        t0 = time.perf_counter()
        out = pipe(
            prompt=[specs[i].prompt for i, _ in chunk],
            seed=[s for _, s in chunk],
            output_type="pil",
            **(sampling or {}),
        )
        gen_seconds += time.perf_counter() - t0
        scores = scorer.score(out.images, [specs[i].expect for i, _ in chunk])
        for (i, s), img, (ok, detail) in zip(chunk, out.images, scores):
            records.append(
                {
                    "prompt_index": i,
                    "prompt": specs[i].prompt,
                    "category": specs[i].category,
                    "split": specs[i].split,
                    "seed": s,
                    "correct": bool(ok),
                    **detail,
                }
            )
            if len(samples) < keep_images:
                samples.append((img, bool(ok), specs[i].prompt))
    return {
        "summary": summarize(records),
        "records": records,
        "samples": samples,
        "seconds": time.perf_counter() - start,
        "generation_seconds": gen_seconds,
    }


def shuffled_expectations(expects: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """A derangement of the expectations (no item keeps its own) for chance-level checks."""
    n = len(expects)
    if n < 2:
        raise ValueError("need at least 2 expectations to shuffle")
    g = np.random.default_rng(seed)
    while True:
        perm = g.permutation(n)
        if not (perm == np.arange(n)).any():
            return [expects[int(j)] for j in perm]
