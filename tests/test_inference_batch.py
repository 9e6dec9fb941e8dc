"""Prompt templates and batch generation: strict rendering, prompts files, resume, sharding, torchrun."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from bitdance.cli import main as cli
from bitdance.pipeline.batch import dist_info, plan_items, read_rows, shard
from bitdance.pipeline.provenance import read_recipe
from bitdance.pipeline.templates import Template, TemplateSet, load_templates, parse_vars, placeholders_of


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- templates
def test_builtin_templates_render_with_defaults():
    t = TemplateSet.builtin()
    assert {"product", "garment", "shapes", "emoji", "portrait"} <= set(t.names())
    assert (
        t.render("product", {"subject": "a red sneaker"})
        == "product photo of a red sneaker, studio lighting, white background"
    )
    assert (
        t.render("product", {"subject": "a mug", "style": "flat lay"}) == "product photo of a mug, flat lay"
    )
    assert t.get("product").placeholders == ("subject", "style")


def test_template_errors_name_the_problem_and_list_allowed():
    t = TemplateSet.builtin()
    with pytest.raises(ValueError, match=r"unknown template 'nope'; allowed: .*product"):
        t.render("nope", {})
    with pytest.raises(ValueError, match=r"needs variable 'subject'.*its variables are: subject, style"):
        t.render("product", {})
    with pytest.raises(ValueError, match=r"has no variable 'colour'; its variables are: subject, style"):
        t.render("product", {"subject": "x", "colour": "red"})
    with pytest.raises(ValueError, match="is empty"):
        t.render("product", {"subject": "  "})
    for bad in ("a {0}", "a {x:>3}", "a {x.y}", "a {x!r}", "a {"):
        with pytest.raises(ValueError, match="template 'b'"):
            placeholders_of(bad, "b")
    assert Template("lit", "{{literal}} {x}").render({"x": "y"}) == "{literal} y"


def test_parse_vars():
    assert parse_vars(["subject=a red sneaker", "style=a=b"]) == {"subject": "a red sneaker", "style": "a=b"}
    for bad in (["subject"], ["=x"], ["a b=c"]):
        with pytest.raises(ValueError, match="key=value"):
            parse_vars(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_vars(["a=1", "a=2"])


def test_user_template_files_json_and_yaml(tmp_path):
    (tmp_path / "t.json").write_text(
        json.dumps(
            {
                "version": 1,
                "templates": {
                    "product": "catalogue shot of {subject}",
                    "duo": {"text": "{a} and {b}", "defaults": {"b": "a cat"}},
                },
            }
        )
    )
    t = load_templates(tmp_path / "t.json")
    assert t.render("product", {"subject": "a mug"}) == "catalogue shot of a mug"  # user file wins
    assert t.render("duo", {"a": "a dog"}) == "a dog and a cat" and "emoji" in t
    pytest.importorskip("yaml")
    (tmp_path / "t.yaml").write_text("templates:\n  tree: 'a {kind} tree'\n")
    assert load_templates(tmp_path / "t.yaml").render("tree", {"kind": "pine"}) == "a pine tree"
    for body, match in (
        ("{", "invalid JSON"),
        ('{"templates": {"X y": "a"}}', "template name"),
        ('{"templates": {"a": {"text": "{x}", "defaults": {"y": "1"}}}}', "not one of its"),
        ('{"nope": 1}', "'templates' mapping"),
    ):
        (tmp_path / "bad.json").write_text(body)
        with pytest.raises(ValueError, match=match):
            load_templates(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        load_templates(tmp_path / "missing.json")


# ----------------------------------------------------------------------------- planning
def test_read_rows_and_plan_items(tmp_path):
    (tmp_path / "p.jsonl").write_text(
        '{"prompt": "a red sneaker"}\n\n{"prompt": "a cat", "seed": 100, "name": "cat"}\n'
        '{"template": "garment", "colour": "blue", "item": "bag"}\n'
    )
    rows = read_rows(tmp_path / "p.jsonl")
    assert [r[0] for r in rows] == ["p.jsonl:1", "p.jsonl:3", "p.jsonl:4"]
    items = plan_items(rows, out_dir=tmp_path, text_model=True, n=2, base_seed=10)
    assert [it.prompt for it in items] == ["a red sneaker"] * 2 + ["a cat"] * 2 + ["a blue bag"] * 2
    assert [it.seed for it in items] == [10, 11, 100, 101, 14, 15]  # base + item index, or the row's seed + j
    assert [it.path.name for it in items][:4] == ["00000-10.png", "00001-11.png", "cat-0.png", "cat-1.png"]
    (tmp_path / "p.csv").write_text("colour,item,seed\nred,sneaker,3\ngreen,coat,\n")
    items = plan_items(read_rows(tmp_path / "p.csv"), out_dir=tmp_path, text_model=True, template="garment")
    assert [(it.prompt, it.seed) for it in items] == [("a red sneaker", 3), ("a green coat", 1)]


@pytest.mark.parametrize(
    "line,match",
    [
        ('{"prompt": "a", "colour": "red"}', "unknown column 'colour'"),
        ('{"template": "garment", "colour": "red"}', "needs variable 'item'"),
        ('{"template": "nope"}', "unknown template 'nope'"),
        ('{"prompt": "a", "seed": -1}', "seed must be an integer"),
        ('{"prompt": "a", "name": "../x"}', "name"),
        ('{"class": 3}', "class-conditional"),
        ('["a"]', "JSON object"),
        ("{oops", "invalid JSON"),
    ],
)
def test_bad_rows_name_the_line(tmp_path, line, match):
    (tmp_path / "p.jsonl").write_text('{"prompt": "fine"}\n' + line + "\n")
    with pytest.raises(ValueError, match=f"p.jsonl:2: .*{match}"):
        plan_items(read_rows(tmp_path / "p.jsonl"), out_dir=tmp_path, text_model=True)


def test_sharding_and_dist_env(tmp_path):
    rows = [(f"f:{i}", {"prompt": f"p{i}"}) for i in range(5)]
    items = plan_items(rows, out_dir=tmp_path, text_model=True)
    parts = [shard(items, r, 2) for r in range(2)]
    assert [it.index for it in parts[0]] == [0, 2, 4] and [it.index for it in parts[1]] == [1, 3]
    assert dist_info({}) == (0, 1) and dist_info({"RANK": "1", "WORLD_SIZE": "3"}) == (1, 3)
    with pytest.raises(ValueError, match="invalid RANK"):
        dist_info({"RANK": "3", "WORLD_SIZE": "2"})


# ----------------------------------------------------------------------------- CLI batches
def _prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        '{"prompt": "a red sneaker"}\n{"template": "garment", "colour": "blue", "item": "bag"}\n'
        '{"prompt": "a cat", "seed": 42}\n'
    )
    return path


def _run(args, out_dir, env=None, monkeypatch=None):
    if env and monkeypatch:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    return cli(
        [
            "generate",
            "--model",
            "random:tiny-text",
            "--steps",
            "1",
            "--cfg",
            "2.0",
            "--out-dir",
            str(out_dir),
            *args,
        ]
    )


def test_batch_resume_skips_finished_items(tmp_path, capsys):
    prompts = _prompts(tmp_path)
    assert _run(["--prompts", str(prompts), "--n", "2"], tmp_path / "out") == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == [
        "00000-0.png",
        "00001-1.png",
        "00002-2.png",
        "00003-3.png",
        "00004-42.png",
        "00005-43.png",
    ]
    assert read_recipe(tmp_path / "out" / "00002-2.png")["prompt"] == "a blue bag"
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    os.remove(tmp_path / "out" / "00003-3.png")
    capsys.readouterr()
    assert _run(["--prompts", str(prompts), "--n", "2"], tmp_path / "out") == 0
    assert "1 written, 5 already done" in capsys.readouterr().err
    for p, t in stamps.items():
        if p.name != "00003-3.png":
            assert p.stat().st_mtime_ns == t
    assert _run(["--prompts", str(prompts), "--n", "2", "--steps", "2"], tmp_path / "out") == 0  # new recipe
    assert read_recipe(tmp_path / "out" / "00000-0.png")["num_sampling_steps"] == 2


def test_two_ranks_make_the_same_files_as_one(tmp_path, monkeypatch):
    prompts = _prompts(tmp_path)
    assert _run(["--prompts", str(prompts), "--batch-size", "2"], tmp_path / "one") == 0
    for rank in ("0", "1"):
        assert (
            _run(
                ["--prompts", str(prompts)], tmp_path / "two", {"RANK": rank, "WORLD_SIZE": "2"}, monkeypatch
            )
            == 0
        )
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    two = {p.name: p.read_bytes() for p in (tmp_path / "two").iterdir()}
    assert one == two and len(one) == 3


def test_blocked_prompt_in_a_batch_stops_before_any_work(tmp_path, capsys):
    path = tmp_path / "p.csv"
    path.write_text("prompt\na red sneaker\na naked woman\n")
    assert _run(["--prompts", str(path)], tmp_path / "out") == 1
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: p.csv:3: prompt refused by the content filter") and len(err.splitlines()) == 1
    )
    assert not (tmp_path / "out").exists()
    assert _run(["--prompts", str(path), "--filter-mode", "warn"], tmp_path / "out") == 0
    assert "warning: safety: WARNING sexual_explicit" in capsys.readouterr().err
    assert read_recipe(tmp_path / "out" / "00001-1.png")["filter"]["mode"] == "warn"


def test_single_prompt_templates_from_the_cli(tmp_path, capsys):
    out = tmp_path / "t.png"
    assert _run(["--template", "product", "--var", "subject=a red sneaker", "-o", str(out)], tmp_path) == 0
    assert read_recipe(out)["prompt"] == "product photo of a red sneaker, studio lighting, white background"
    assert cli(["generate", "--list-templates"]) == 0
    assert "product" in capsys.readouterr().out


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    if shutil.which("torchrun") is None and not os.path.exists(
        os.path.join(os.path.dirname(sys.executable), "torchrun")
    ):
        pytest.skip("torchrun not available")
    prompts = _prompts(tmp_path)
    base = [
        "-m",
        "bitdance.cli",
        "generate",
        "--model",
        "random:tiny-text",
        "--steps",
        "1",
        "--prompts",
        str(prompts),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r1 = subprocess.run(
        [sys.executable, *base, "--out-dir", str(tmp_path / "one")], capture_output=True, text=True, env=env
    )
    assert r1.returncode == 0, r1.stderr
    r2 = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            *base,
            "--out-dir",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r2.returncode == 0, r2.stderr
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    two = {p.name: p.read_bytes() for p in (tmp_path / "two").iterdir()}
    assert one == two and len(one) == 3
