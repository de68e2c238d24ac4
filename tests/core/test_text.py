"""ambiscope.core.text.one_line: the one way an error becomes a one-line message."""

from __future__ import annotations

from ambiscope.core.text import one_line


def test_collapses_whitespace_and_newlines() -> None:
    assert one_line(ValueError("bad\n  value\tat line 3\n")) == "bad value at line 3"
    assert one_line("  two\nlines ") == "two lines"


def test_an_exception_without_a_message_is_named_by_its_type() -> None:
    assert one_line(KeyError()) == "KeyError"
    assert one_line("") == ""  # text stays empty so callers can pick a placeholder


def test_long_messages_are_cut_to_the_limit() -> None:
    text = one_line("x" * 500)
    assert len(text) == 300 and text.endswith("...")
    assert one_line("abcdefgh", 6) == "abc..."
    assert one_line("y" * 500, None) == "y" * 500
