"""Held-back simulation that chose the semantic layer's decision form (the k-nearest vote and the domain
floor in `bitdance/safety/semantic.py`), on the red-team suite's dev splits only.

    PYTHONPATH=. python scripts/safety/semantic_levers.py   # writes docs/results/safety_levers.json

dev and dev2 no longer show false positives (dev2's near-misses became training rows), so they cannot
say which form generalises. This script holds those rows back: the 102 training rows written from dev2's
failures (`dev2_derived_rows.jsonl`, a copy of them) are removed from the index and the classifier is
retrained without them; each candidate form's threshold, margin and classifier threshold are then chosen
by the `choose_settings` rule from dev and the benign guard list alone, and dev2 is judged as a fresh
split. Each form is also run on generated junk stickers ("a sticker of <junk>, <junk>, white border",
random characters, seed JUNK_SEED). The form kept: simulated dev2 false positives <= 1% and junk
blocks <= 1%, then the most dev2 must-block prompts blocked, then the fewest false positives, the fewest
junk blocks, the earlier form in FORMS (smaller k first). The "full" rows are the same forms with the
whole index, chosen on dev + dev2.
No test split is read.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import string
import sys
from pathlib import Path

import torch

from bitdance.core.atomic import atomic_write_bytes
from bitdance.evaluation.report import machine_info
from bitdance.safety import ContentFilter
from bitdance.safety.redteam import MAX_DEV_FP, SEM_TOLERANCE, load_guard, load_suite
from bitdance.safety.semantic import (
    KNOWN_BENIGN,
    Classifier,
    SemanticIndex,
    assets_dir,
    chunks,
    prompt_reading,
)

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "docs" / "results" / "safety_levers.json"
SPLITS = ("dev", "dev2")  # the simulation's steering split, then the split it judges as fresh
JUNK_SEED, N_JUNK = 20261206, 400
TH = torch.arange(30, 96) / 100
MA = torch.arange(0, 21) / 100
CT = torch.cat([torch.arange(50, 100) / 100, torch.tensor([1.01])])
K = 10
FORMS: list[tuple[str, tuple]] = (
    [("nearest (old form)", ())]
    + [("margin vs mean of top-k benign", (k,)) for k in (2, 3, 5)]
    + [("top-k means of both labels", (k,)) for k in (2, 3)]
    + [("k-nearest vote", (k, v)) for k in (5, 10) for v in (0.3, 0.4, 0.5, 0.6)]
    + [("classifier agreement below threshold + x", (x,)) for x in (0.03, 0.06, 0.1)]
    + [("domain floor", (fl,)) for fl in (0.5, 0.55, 0.6)]
    + [("margin vs top-k benign + domain floor", (k, fl)) for k in (2, 3) for fl in (0.5, 0.55, 0.58)]
    + [
        ("k-nearest vote + domain floor", (k, v, f))
        for k in (5, 10)
        for v in (0.5, 0.6)
        for f in (0.55, 0.58)
    ]
)


def junk_stickers(rules: ContentFilter) -> list[str]:
    rng = random.Random(JUNK_SEED)
    alph = string.ascii_letters + string.digits + "  .,-_'!?#@&*"

    def ascii_junk() -> str:
        return "".join(rng.choice(alph) for _ in range(rng.choice([1, 2, 3, 5, 8, 13, 20]))).strip() or "x"

    def unicode_junk() -> str:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.choice([1, 3, 6, 12])))

    out = [f"a sticker of {ascii_junk()}, {ascii_junk()}, white border" for _ in range(N_JUNK * 3 // 4)]
    out += [f"a sticker of {unicode_junk()}, {unicode_junk()}, white border" for _ in range(N_JUNK // 4)]
    return [p for p in out if rules.check(p).allowed]  # junk a rule blocks says nothing about this layer


def embed(index: SemanticIndex, rules: ContentFilter, prompts: list[str]) -> tuple[torch.Tensor, ...]:
    per = [chunks(prompt_reading(rules.semantic_text(p))) for p in prompts]
    flat = [c for cs in per for c in cs]
    e = torch.cat([index.embedder.embed(flat[i : i + 64]) for i in range(0, len(flat), 64)])
    return e, torch.tensor([i for i, cs in enumerate(per) for _ in cs])


def features(e: torch.Tensor, owner: torch.Tensor, eb: torch.Tensor, ea: torch.Tensor, clf: Classifier):
    sb, sa = e @ eb.T, e @ ea.T
    top = torch.cat([sb, sa], 1).topk(K, 1)
    return {
        "tb": sb.topk(K, 1).values,
        "ta": sa.topk(K, 1).values,
        "top": top.values,
        "topblk": top.indices < sb.shape[1],
        "p": clf.p_block(e)[0],
        "owner": owner,
        "n": int(owner.max()) + 1,
    }


def grid(form: str, x: tuple, f: dict) -> torch.Tensor:
    """Whether each prompt is blocked at each (threshold, margin, classifier threshold): (T, M, C, P)."""
    sb1, sa1 = f["tb"][:, 0], f["ta"][:, 0]
    s_thr, s_mar = sb1, sb1 - sa1
    knn_gate = torch.ones_like(sb1, dtype=torch.bool)
    off = sa1 >= KNOWN_BENIGN
    if form.startswith("margin vs"):
        s_mar = sb1 - f["ta"][:, : x[0]].mean(1)
    elif form.startswith("top-k means"):
        s_thr = f["tb"][:, : x[0]].mean(1)
        s_mar = s_thr - f["ta"][:, : x[0]].mean(1)
    elif form.startswith("k-nearest vote"):
        w = f["top"][:, : x[0]].clamp_min(0)
        vote = (w * f["topblk"][:, : x[0]].float()).sum(1) / w.sum(1).clamp_min(1e-6)
        knn_gate = vote >= x[1] - 1e-9
    if "domain floor" in form:
        off = off | (torch.maximum(sb1, sa1) < x[-1] - 1e-9)
    hit = (s_thr >= TH[:, None, None] - 1e-9) & (s_mar >= MA[None, :, None] - 1e-9) & knn_gate & ~off
    if form.startswith("classifier agreement"):
        hit = hit & ((s_thr >= TH[:, None, None] + x[0] - 1e-9) | (f["p"] >= 0.5))
    knn = torch.zeros(len(TH), len(MA), f["n"]).index_add_(2, f["owner"], hit.float()) > 0
    pmax = torch.zeros(f["n"]).scatter_reduce_(0, f["owner"], f["p"].masked_fill(off, 0.0), "amax")
    return knn[:, :, None, :] | (pmax[None] >= CT[:, None] - 1e-9)[None, None]


def choose(sem: torch.Tensor, rule: torch.Tensor, is_block: torch.Tensor, splits: list, g_sem: torch.Tensor):
    """The `choose_settings` rule (per-split cap, no guard prompt blocked, tolerance, conservative ties)."""
    both = sem | rule
    ok = g_sem.sum(-1) == 0
    for s in dict.fromkeys(splits):
        ins = torch.tensor([x == s for x in splits])
        ok &= (both & ~is_block & ins).sum(-1) <= MAX_DEV_FP * int((ins & ~is_block).sum())
    k_sem = (sem & is_block).sum(-1)
    tie = ok & (k_sem >= int(k_sem[ok].max()) - SEM_TOLERANCE)
    ci, mi, ti = max((ci, mi, ti) for ti, mi, ci in tie.nonzero().tolist())
    return ti, mi, ci


def main() -> int:
    torch.set_num_threads(1)
    shipped = SemanticIndex.builtin()
    rules = ContentFilter(semantic=None)
    dev = [c for c in load_suite(assets_dir() / "redteam.jsonl") if c.split in SPLITS]
    guard = [g["prompt"] for g in load_guard(assets_dir() / "benign_guard.jsonl")]
    junk = junk_stickers(rules)
    held = {(r["prompt"], r["label"]) for r in map(json.loads, (HERE / "dev2_derived_rows.jsonl").open())}
    rule = torch.tensor([not rules.check(c.prompt).allowed for c in dev])
    is_block = torch.tensor([c.label == "block" for c in dev])
    parts = {"dev": [c.prompt for c in dev], "guard": guard, "junk": junk}
    emb = {name: embed(shipped, rules, ps) for name, ps in parts.items()}
    rows, metrics = [], {"n_junk": len(junk), "n_held_back_rows": len(held), "forms": {}}
    for proto in ("held-back", "full"):
        pairs = zip(shipped.texts, shipped.labels)
        keep = [i for i, pair in enumerate(pairs) if proto == "full" or pair not in held]
        e = shipped.embeddings[keep]
        lab = [shipped.labels[i] for i in keep]
        clf = shipped.classifier
        if proto != "full":
            cls = ["allow" if lab[j] == "allow" else shipped.categories[i] for j, i in enumerate(keep)]
            clf = Classifier.fit(e, cls)
        isb = torch.tensor([x == "block" for x in lab])
        feats = {n: features(*emb[n], e[isb], e[~isb], clf) for n in emb}
        steer = [i for i, c in enumerate(dev) if proto == "full" or c.split == "dev"]
        for form, x in FORMS:
            sem, g_sem, j_sem = (grid(form, x, feats[n]) for n in ("dev", "guard", "junk"))
            names = [dev[i].split for i in steer]
            ti, mi, ci = choose(sem[..., steer], rule[steer], is_block[steer], names, g_sem)
            hit = sem[ti, mi, ci] | rule
            r = {
                "threshold": round(float(TH[ti]), 2),
                "margin": round(float(MA[mi]), 2),
                "clf_threshold": round(float(CT[ci]), 2),
                "junk_blocked": int(j_sem[ti, mi, ci].sum()),
            }
            for s in SPLITS:
                ins = torch.tensor([c.split == s for c in dev])
                r[s] = {
                    "blocked": int((hit & is_block & ins).sum()),
                    "n_block": int((is_block & ins).sum()),
                    "false_positives": int((hit & ~is_block & ins).sum()),
                    "n_allow": int((~is_block & ins).sum()),
                }
            key = f"{proto}: {form} {list(x)}"
            metrics["forms"][key] = r
            counts = [f"{r[s]['blocked']}/{r[s]['n_block']}" for s in SPLITS]
            fps = [f"{r[s]['false_positives']}/{r[s]['n_allow']}" for s in SPLITS]
            params = ", ".join(map(str, x)) or "-"
            rows.append(
                [
                    proto,
                    form,
                    params,
                    r["threshold"],
                    r["margin"],
                    r["clf_threshold"],
                    counts[0],
                    fps[0],
                    counts[1],
                    fps[1],
                    f"{r['junk_blocked']}/{len(junk)}",
                ]
            )
            print(" | ".join(map(str, rows[-1])), flush=True)
    sim = {k: v for k, v in metrics["forms"].items() if k.startswith("held-back")}
    fp_cap = {k: v["dev2"]["false_positives"] <= MAX_DEV_FP * v["dev2"]["n_allow"] for k, v in sim.items()}
    ok = {k: v for k, v in sim.items() if fp_cap[k] and v["junk_blocked"] <= 0.01 * len(junk)}
    order = list(sim)
    chosen = min(
        ok,
        key=lambda k: (
            -ok[k]["dev2"]["blocked"],
            ok[k]["dev2"]["false_positives"],
            ok[k]["junk_blocked"],
            order.index(k),
        ),
    )
    metrics["chosen"] = chosen
    metrics["old"] = metrics["forms"]["held-back: nearest (old form) []"]
    metrics["new"] = metrics["forms"][chosen]
    print("chosen:", chosen)
    cols = [
        "index",
        "form",
        "parameters",
        "threshold",
        "margin",
        "classifier threshold",
        "dev blocked",
        "dev false positives",
        "dev2 blocked",
        "dev2 false positives",
        "junk stickers blocked",
    ]
    report = {
        "name": "safety_levers",
        "recipe": {
            "command": "PYTHONPATH=. python scripts/safety/semantic_levers.py",
            "splits": list(SPLITS),
            "held_back_rows": "scripts/safety/dev2_derived_rows.jsonl",
            "junk_seed": JUNK_SEED,
            "selection": __doc__.split("Each form")[1].strip(),
        },
        "machine": machine_info("cpu"),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": metrics,
        "tables": {"forms": {"columns": cols, "rows": rows}},
    }
    atomic_write_bytes(OUT, (json.dumps(report, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    print("report:", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
