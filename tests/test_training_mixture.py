"""Dataset mixture specs and the step-indexed, resumable sampler."""

import pytest

from bitdance.training.mixture import MixtureEntry, StepSampler, build_mixture, parse_mixture


def test_parse_mixture_grammar():
    entries = parse_mixture("fashion_mnist:tint=1,shapes*2,emoji:repeats=3:background=black*0.5")
    assert [e.name for e in entries] == ["fashion_mnist", "shapes", "emoji"]
    assert entries[0].options == {"tint": 1} and entries[0].weight == 1.0
    assert entries[1].options == {} and entries[1].weight == 2.0
    assert entries[2].options == {"repeats": 3, "background": "black"} and entries[2].weight == 0.5
    folder = parse_mixture("folder:root=/data/imgs:manifest=/data/imgs/m.jsonl:verify=false")[0]
    assert folder.options == {"root": "/data/imgs", "manifest": "/data/imgs/m.jsonl", "verify": False}
    assert MixtureEntry("shapes", {"length": 5}, 2.0).spec() == "shapes:length=5*2"


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("", "empty"),
        ("shapes,,digits", "empty entry"),
        ("Shapes!", "bad dataset name"),
        ("shapes:length", "key=value"),
        ("shapes*0", "positive"),
        ("shapes*-1", "positive"),
    ],
)
def test_parse_mixture_errors(spec, needle):
    with pytest.raises(ValueError, match=needle):
        parse_mixture(spec)


def test_build_mixture_unknown_dataset_and_option():
    with pytest.raises(ValueError, match="unknown dataset"):
        build_mixture("nope", "train", 16)
    with pytest.raises(ValueError, match="unknown option"):
        build_mixture("shapes:colour=red", "train", 16)


def test_build_mixture_concatenates_and_tags_source():
    ds = build_mixture("shapes:length=5,digits", "train", 16)
    assert len(ds) == 5 + 1437
    assert ds[0]["meta"]["source"] == "shapes" and ds[5]["meta"]["source"] == "digits"
    assert ds[0]["image"].shape == (3, 16, 16)


def test_sampler_is_a_pure_function_of_step_and_chunks_agree():
    s = StepSampler([10, 7], [1.0, 2.0], global_batch=8, seed=3)
    assert len(s.epoch_indices(0)) == 10 + 14
    full = [s.batch(k) for k in range(12)]
    again = StepSampler([10, 7], [1.0, 2.0], global_batch=8, seed=3)
    assert [again.batch(k) for k in reversed(range(12))] == list(reversed(full))
    for k in range(12):  # 2 ranks x 2 micro-steps cover the global batch in order
        assert sum((s.batch(k, c, 4) for c in range(4)), []) == full[k]
    # every item of an epoch appears (weight 2 => twice for the second set)
    epoch0 = s.stream(0, 24).tolist()
    assert sorted(epoch0) == sorted(list(range(10)) + list(range(10, 17)) * 2)
    assert StepSampler([10, 7], None, 8, seed=4).batch(0) != full[0]


def test_sampler_fractional_weight_and_uneven_chunks():
    s = StepSampler([100], [0.25], global_batch=5, seed=0)
    assert len(s.epoch_indices(0)) == 25
    with pytest.raises(ValueError, match="equal chunks"):
        s.batch(0, 0, 2)
