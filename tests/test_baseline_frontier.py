"""Frontier and matched-quality speed ratio on synthetic points (no models)."""

import pytest

from bitdance.evaluation.versus_frontier import fastest_reaching, frontier, frontier_plot_png, matched_quality


def pt(setting, fid, ips, gflop=None):
    return {"setting": setting, "fid_cls": fid, "images_per_second": ips, "gflop_per_image": gflop}


OURS = [pt("P=1 h20", 2.0, 3.0, 2.0), pt("P=4 h20", 2.2, 10.0, 2.0), pt("P=4 h5", 4.0, 20.0, 1.0)]
OURS.append(pt("P=16 h20", 2.5, 8.0, 2.0))  # dominated by P=4 h20 (worse FID, slower)
THEIRS = [pt("DPM-5", 30.0, 12.0, 1.0), pt("DPM-10", 6.0, 6.0, 2.0), pt("DPM-20", 3.0, 3.0, 4.0)]
THEIRS.append(pt("DPM-50", 3.1, 1.2, 10.0))  # dominated by DPM-20


def test_frontier_drops_dominated_points_and_sorts_fastest_first():
    assert [p["setting"] for p in frontier(OURS)] == ["P=4 h5", "P=4 h20", "P=1 h20"]
    assert [p["setting"] for p in frontier(THEIRS)] == ["DPM-5", "DPM-10", "DPM-20"]
    # equal points do not dominate each other
    same = [pt("a", 1.0, 1.0), pt("b", 1.0, 1.0)]
    assert len(frontier(same)) == 2


def test_fastest_reaching():
    assert fastest_reaching(THEIRS, 6.0)["setting"] == "DPM-10"
    assert fastest_reaching(THEIRS, 2.9) is None
    assert fastest_reaching(OURS, 100.0)["setting"] == "P=4 h5"


def test_matched_quality_when_ours_is_better():
    m = matched_quality(OURS, THEIRS)
    # both reach 3.0 (their best); our fastest setting at FID <= 3.0 is P=4 h20 at 10 images/s
    assert m["target_fid_cls"] == 3.0 and m["better_best_fid"] == "ours"
    assert (m["ours"], m["theirs"]) == ("P=4 h20", "DPM-20")
    assert m["speed_ratio"] == pytest.approx(10.0 / 3.0)
    assert m["flop_ratio"] == pytest.approx(4.0 / 2.0)


def test_matched_quality_when_diffusion_is_better_gives_a_ratio_below_one():
    theirs = [pt("DPM-5", 1.5, 40.0), pt("DPM-20", 1.0, 10.0)]
    m = matched_quality(OURS, theirs)
    # target = our best (2.0); diffusion reaches it with its 5-step setting, 40 images/s vs our 3
    assert m["target_fid_cls"] == 2.0 and m["better_best_fid"] == "theirs"
    assert (m["ours"], m["theirs"]) == ("P=1 h20", "DPM-5")
    assert m["speed_ratio"] == pytest.approx(3.0 / 40.0) and m["flop_ratio"] is None


def test_matched_quality_needs_points():
    with pytest.raises(ValueError, match="at least one point of each system"):
        matched_quality([], THEIRS)


def test_frontier_plot_is_a_png():
    a = [{**p, "ci": {"low": p["fid_cls"] * 0.9, "high": p["fid_cls"] * 1.2}} for p in OURS]
    png = frontier_plot_png(a, THEIRS, ("ours", "theirs"), "t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
