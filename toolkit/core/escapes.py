"""Text from files and the kernel shown to people: its control and format
characters (newlines, ESC, NUL, bidi overrides, line separators) written as
escapes, so that what a name or a message holds never reaches a terminal raw."""

from __future__ import annotations


def escape_controls(text: str, keep: str = "") -> str:
    """`text` with every character that is not printable (but those in `keep`)
    written as an escape: one line stays one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in keep else escape_char(ch) for ch in text)


def escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
