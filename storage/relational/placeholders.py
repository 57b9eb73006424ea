"""Shared SQL's `:name` parameters rewritten into psycopg's `%(name)s` form.

The relational SQL is written once, with SQLite's named parameters. psycopg reads every `%`
in the text as the start of a placeholder, inside string literals too, so a literal `%` must
become `%%`. A `:name` is a parameter only outside string literals, quoted identifiers,
dollar-quoted bodies and comments, and only when not part of a `::` cast.
"""

from __future__ import annotations

import functools
import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """`sql` with `:name` as `%(name)s` and every other `%` doubled."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "'":
            # E'...' strings take backslash escapes; standard strings only double quotes.
            escapes = i > 0 and sql[i - 1] in "eE" and not _is_word(sql, i - 2)
            end = _quoted_end(sql, i, "'", backslash=escapes)
        elif c == '"':
            end = _quoted_end(sql, i, '"', backslash=False)
        elif c == "-" and sql.startswith("--", i):
            newline = sql.find("\n", i)
            end = n if newline < 0 else newline
        elif c == "/" and sql.startswith("/*", i):
            end = _block_comment_end(sql, i)
        elif c == "$" and (tag := _DOLLAR_TAG.match(sql, i)) and not _is_word(sql, i - 1):
            close = sql.find(tag.group(), tag.end())
            end = n if close < 0 else close + len(tag.group())
        elif c == ":" and sql.startswith("::", i):
            out.append("::")
            i += 2
            continue
        elif c == ":" and (name := _NAME.match(sql, i + 1)):
            out.append(f"%({name.group()})s")
            i = name.end()
            continue
        else:
            out.append("%%" if c == "%" else c)
            i += 1
            continue
        out.append(sql[i:end].replace("%", "%%"))
        i = end
    return "".join(out)


def _is_word(sql: str, at: int) -> bool:
    return at >= 0 and (sql[at].isalnum() or sql[at] == "_")


def _quoted_end(sql: str, start: int, quote: str, *, backslash: bool) -> int:
    """The index just past the literal opened at `start` (the end of text if unclosed)."""
    i, n = start + 1, len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
        elif c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2  # a doubled quote stands for one
            else:
                return i + 1
        else:
            i += 1
    return n


def _block_comment_end(sql: str, start: int) -> int:
    """PostgreSQL block comments nest."""
    depth, i, n = 0, start, len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n
