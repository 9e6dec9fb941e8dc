"""Edit-bench sensitivity detail on tiny hand-made inputs: cell flags, per-position records, the breakdown."""

import numpy as np
import torch

from bitdance.evaluation.edit_sensitivity import (
    BLACK_MAX,
    black_cells,
    cell_flags,
    detail_tables,
    position_records,
    summarize,
)


def _tiny():
    """A 2x2 grid (f = 2, d = 3): cell (0, 0) black, (0, 1) faint bleed, (1, 0) flat red, (1, 1) noisy."""
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    img[0:2, 2:4] = BLACK_MAX  # still black: the threshold is inclusive
    img[2:4, 0:2] = (200, 0, 0)
    img[2:4, 2:4] = [[[0, 0, 0], [255, 255, 255]], [[0, 0, 0], [0, 0, 0]]]
    bg = torch.ones(3, 2, 2)
    bits = bg.clone()
    bits[0, 1, 1] = -1.0  # only cell (1, 1) leaves the black image's token
    return img, bits, bg


def test_cell_flags_and_black_cells():
    img, bits, bg = _tiny()
    fl = cell_flags(bits, img, bg, 2)
    assert fl["bg_token"].tolist() == [[True, True], [True, False]]
    assert fl["black"].tolist() == [[True, True], [False, False]]
    assert fl["uniform"].tolist() == [[True, True], [True, False]]
    assert black_cells(img, 2).tolist() == fl["black"].tolist()
    img[0, 0, 1] = BLACK_MAX + 1
    assert not black_cells(img, 2)[0, 0]


def test_records_and_summary_split_same_and_differing_positions():
    img, bits, bg = _tiny()
    other_bits = bits.clone()
    other_bits[:, 1, 0] = -1.0  # the partner edit differs at cell (1, 0) (raster 2), by 3 bits
    other_img = img.copy()
    other_img[2:4, 0:2] = 0  # and is black there
    pair = (cell_flags(bits, img, bg, 2), cell_flags(other_bits, other_img, bg, 2))
    src = (np.ones((2, 2), bool), np.array([[True, False], [True, True]]))
    classes = {0: "before", 2: "after", 3: "after"}
    recs = position_records("joint", "count_colour", classes, 2, pair, (bits, other_bits), src)
    by_r = dict(zip(classes, recs))
    assert not by_r[0]["differs"] and by_r[0]["bg_token"] and by_r[0]["black"] and by_r[0]["source_black"]
    assert by_r[2]["differs"] and by_r[2]["bits_differing"] == 3 and not by_r[2]["black"]
    assert not by_r[3]["differs"] and not by_r[3]["bg_token"] and not by_r[3]["uniform"]
    s = summarize(
        recs + position_records("kept_first", "garment_half", {1: "inside"}, 2, pair, (bits, bits), src)
    )
    a = s["joint"]["all"]
    assert a["n"] == 3 and abs(a["sensitivity"] - 1 / 3) < 1e-9
    assert a["same"]["n"] == 2 and a["same"]["black_both"] == 0.5 and a["same"]["bg_token_both"] == 0.5
    assert a["differs"]["n"] == 1 and a["differs"]["mean_bits_differing"] == 3.0
    assert a["excluding_black_both"] == {"fraction": 0.5, "n": 2}  # position 0 (black in both) left out
    assert a["within_black_both"] == {"fraction": 0.0, "n": 1} and a["within_source_black_both"]["n"] == 3
    assert s["joint"]["after"]["n"] == 2 and "inside" not in s["joint"]
    assert s["joint"]["by_category"]["count_colour"]["before"]["sensitivity"] == 0.0
    k = s["kept_first"]["inside"]
    assert k["same"]["source_black_both"] == 0.0  # partner source not black at (0, 1)
    assert k["excluding_black_both"] == {"fraction": None, "n": 0}  # its only position is black in both
    assert detail_tables(s)["summary"]["rows"][0][:4] == ["joint", "all", "0.333", "2 / 3"]
    rows = detail_tables(s)["detail"]["rows"]
    assert rows[0][:5] == ["joint", "all", "all", 3, "0.333"] and all(len(r) == len(rows[0]) for r in rows)


def test_cli_flag_writes_a_detail_that_reproduces_the_benchmark_sensitivity(tmp_path):
    import json

    from bitdance.evaluation.cli import main

    out = tmp_path / "edit"
    argv = ["eval", "edit", "--model", "random:tiny-text", "--n", "2", "--seeds", "0", "--methods", "joint"]
    assert main([*argv, "--steps", "2", "--out", str(out), "--sensitivity-detail"]) == 0
    bench = json.loads((out / "report.json").read_text())
    detail = json.loads((out / "sensitivity_detail" / "report.json").read_text())
    assert detail["name"] == "edit_sensitivity_detail" and "sensitivity_detail" not in bench["metrics"]
    for cls in ("all", "before", "inside", "after"):
        want = bench["metrics"]["joint"]["sensitivity"][cls]
        assert detail["metrics"]["joint"][cls]["sensitivity"] == want["fraction"]
        assert detail["metrics"]["joint"][cls]["n"] == want["n"]
