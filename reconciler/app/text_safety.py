"""Strings written by others, made safe for where they are shown.

Test and subtest names come from the repositories under test, commit subjects from anyone who
can push, listing output from a harness: printed raw, an escape sequence rewrites a terminal's
title or hides lines, a newline forges a line of a plan, a `|` or `<` breaks a PR comment's
table or becomes markup. Every renderer of such a string goes through one of these:

- `terminal_safe`: whole text for a terminal; every control character but newline and tab
  shown as a visible escape (logs keep their lines);
- `one_line`: one value on one line of text output; newline and tab escaped as well;
- `markdown_cell`: one value inside markdown (a PR comment, a status file): `one_line`, then
  HTML-escaped, with table pipes and backquotes neutralised.
"""

from __future__ import annotations

import html
import re

# C0 and C1 controls and DEL; and the bidirectional overrides and isolates ("Trojan Source"),
# which reorder what is shown without being visible themselves.
_BIDI = "\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_IN_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """`text` with control characters (bar \\n and \\t) shown as escapes; \\r\\n is a newline."""
    return _UNSAFE.sub(_escape, text.replace("\r\n", "\n"))


def one_line(text: str) -> str:
    """`text` as one line: every control character, newline and tab included, escaped."""
    return _UNSAFE_IN_LINE.sub(_escape, text)


def markdown_cell(text: str) -> str:
    """`text` as literal markdown on one line: HTML-escaped, `|` and backquotes neutralised."""
    return html.escape(one_line(text)).replace("|", "&#124;").replace("`", "&#96;")
