"""What counts as a blank text, the same in the server's checks and in its published JSON Schema."""

from __future__ import annotations

# The characters a blank text is made of: Python's whitespace (str.isspace, which also counts U+001C-U+001F
# and U+0085) and JSON Schema's (ECMA-262 \s, which also counts U+FEFF). NON_BLANK_PATTERN ("has another
# character") means the same set in both regex flavours, so a schema-valid text is never refused as blank.
NON_BLANK_PATTERN = r"[^\s\x1c-\x1f\x85\ufeff]"


def is_blank(text: str) -> bool:
    """True when `text` has no character but whitespace in the Python or the JSON Schema sense."""
    return all(c.isspace() or c == "\ufeff" for c in text)
