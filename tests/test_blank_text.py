"""Blank text: the server's check and its published JSON Schema pattern agree on every character."""

import re

import pytest
from test_server_support import one_thread  # noqa: F401

from bitdance.core.blank import NON_BLANK_PATTERN, is_blank

# ECMA-262 WhiteSpace and LineTerminator (what \s means in a JSON Schema pattern)
ECMA_SPACE = set("\t\n\v\f\r \xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff") | {
    chr(c) for c in range(0x2000, 0x200B)
}


def test_pattern_and_check_agree_on_every_bmp_character():
    python_space = {chr(c) for c in range(0x10000) if chr(c).isspace()}
    blank = python_space | ECMA_SPACE
    for c in map(chr, range(0x10000)):
        assert is_blank(c) == (c in blank), hex(ord(c))
        assert (re.search(NON_BLANK_PATTERN, c) is None) == is_blank(c), hex(ord(c))


@pytest.mark.parametrize("text", ["\x85\x85", "\ufeff", " \x1c\u3000", ""])
def test_blank_texts(text):
    assert is_blank(text) and re.search(NON_BLANK_PATTERN, text) is None


def test_texts_with_a_visible_character_are_not_blank():
    for text in ["a", " \x85x", "\ufeffred", "\u00e5"]:
        assert not is_blank(text) and re.search(NON_BLANK_PATTERN, text)


@pytest.mark.usefixtures("one_thread")
def test_server_refuses_a_template_variable_of_nel_characters_and_its_schema_agrees():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from test_server_support import tiny_pipe

    from bitdance.server import ServerConfig, create_app

    with TestClient(create_app(tiny_pipe(), ServerConfig(max_queue=8))) as client:
        body = {"template": "pixel-art", "variables": {"palette": "\u0085\u0085", "subject": "a cat"}}
        r = client.post("/v1/jobs", json=body)
        assert r.status_code == 400 and "empty" in r.json()["error"]["message"]
        props = client.get("/openapi.json").json()["components"]["schemas"]
        patterns = {m for m in re.findall(r"'pattern': '([^']*)'", str(props))}
        assert NON_BLANK_PATTERN.replace("\\", "\\\\") in patterns or NON_BLANK_PATTERN in patterns
        assert r"\S" not in patterns  # the old pattern, which let U+0085 through as non-blank
