"""The MiniLM prompt encoder: truncation to the model's text length is reported, never silent."""

import warnings

import pytest

from bitdance.generator.text_encoder import MiniLMTextEncoder

LONG = "there is a purple circle and, right of it, a purple square"


@pytest.fixture(scope="module")
def minilm():
    return MiniLMTextEncoder(max_len=12)


def test_dropped_text_is_the_part_past_max_len(minilm):
    assert minilm.dropped_text("a red sneaker") == ""
    assert minilm.dropped_text(LONG) == ", a purple square"
    c = minilm([LONG, "a red shoe"])
    assert c.mask.sum(1).tolist() == [12, 5]  # [CLS] a red shoe [SEP]
    assert MiniLMTextEncoder(max_len=20).dropped_text(LONG) == ""


def test_pipeline_warns_when_a_prompt_is_cut(minilm):
    from bitdance.pipeline import BitDancePipeline, PromptTruncatedWarning

    pipe = BitDancePipeline.from_preset("tiny-text")
    pipe.text_encoder = minilm  # only the prompt-encoding stage runs here
    with pytest.warns(
        PromptTruncatedWarning, match=r"longer than the model's 12 text tokens; ignored: ', a purple square'"
    ):
        pipe.encode_prompt([LONG])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe.encode_prompt(["a red sneaker"])


def test_server_silences_only_the_warning_it_reports(minilm):
    """`bitdance serve` returns a cut prompt's ignored words in the response, so it mutes that warning."""
    from bitdance.pipeline import BitDancePipeline
    from bitdance.server.cli import quiet_reported_warnings

    pipe = BitDancePipeline.from_preset("tiny-text")
    pipe.text_encoder = minilm
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_reported_warnings()
        pipe.encode_prompt([LONG])
        warnings.warn("other warnings still show", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["other warnings still show"]
