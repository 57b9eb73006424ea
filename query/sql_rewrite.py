"""The rewrite behind POST /api/sql: table references pointed at scoped views.

It works on ClickHouse's canonical text of the query (`formatQuerySingleLine`: no comments,
identifiers quoted only when they must be, strings in single quotes), token by token. It is a
convenience that security does not rest on: query/sql_guard.py checks the names before it and
the analyzer's resolution after it, and refuses whatever it missed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from query.sql_guard import Refused

_TOKEN = re.compile(
    r"""(?P<string>'(?:[^'\\]|\\.)*')
      |(?P<quoted>`(?:[^`\\]|\\.)*`|"(?:[^"\\]|\\.)*")
      |(?P<param>\{\s*[A-Za-z_][A-Za-z0-9_]*\s*:[^{}]*\})
      |(?P<word>[A-Za-z0-9_$]+)
      |(?P<space>\s+)
      |(?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_PARAM_TYPE = re.compile(r":\s*Identifier\s*\}$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str

    @property
    def value(self) -> str:
        """An identifier's name (quotes and escapes removed), else the text."""
        if self.kind == "quoted":
            return re.sub(r"\\(.)", r"\1", self.text[1:-1])
        return self.text

    def is_keyword(self, word: str) -> bool:
        return self.kind == "word" and self.text.upper() == word


def tokens(sql: str) -> list[_Token]:
    return [_Token(m.lastgroup or "other", m.group()) for m in _TOKEN.finditer(sql)]


def cte_names(canonical: str) -> set[str]:
    """Names defined as `name AS (...)` (or `AS MATERIALIZED (...)`): the query's CTEs. A
    superset at worst, which is safe: a CTE name may not be any table's (query/sql_scope.py)."""
    parts = [t for t in tokens(canonical) if t.kind != "space"]
    found = set()
    for i, token in enumerate(parts[:-2]):
        if token.kind in ("word", "quoted") and parts[i + 1].is_keyword("AS"):
            rest = parts[i + 2 : i + 4]
            if rest[0].text == "(" or (
                len(rest) == 2 and rest[0].is_keyword("MATERIALIZED") and rest[1].text == "("
            ):
                found.add(token.value)
    return found


def view_call(view: str, apps: list[str]) -> str:
    """`hutch_scoped.telemetry_events(apps = ['a', 'b'])`; app names are [a-z0-9_-]."""
    return f"{view}(apps = [{', '.join(repr(a) for a in apps)}])"


def rewrite(canonical: str, views: Mapping[str, str], apps: list[str]) -> str:
    """Every reference to a table of `views` (table -> view) in ClickHouse's canonical text,
    pointed at that view bound to `apps`. Qualified names (`x.telemetry_events`), column
    qualifiers (`telemetry_events.app`), aliases (`AS telemetry_events`) and function calls
    are left alone; `IN telemetry_events` becomes `IN (SELECT * FROM <view>)`."""
    parts = tokens(canonical)
    significant = [i for i, t in enumerate(parts) if t.kind != "space"]
    out = [t.text for t in parts]
    for pos, i in enumerate(significant):
        token = parts[i]
        if token.kind == "param" and _PARAM_TYPE.search(token.text):
            raise Refused("query parameters of type Identifier are not allowed")
        if token.kind not in ("word", "quoted") or token.value not in views:
            continue
        before = parts[significant[pos - 1]] if pos > 0 else None
        after = [parts[j] for j in significant[pos + 1 : pos + 3]]
        if before is not None and (before.text == "." or before.is_keyword("AS")):
            continue
        if after and after[0].text in (".", "("):
            continue
        if len(after) == 2 and after[0].is_keyword("AS") and after[1].text == "(":
            raise Refused(f"a WITH clause may not reuse the table name {token.value}")
        call = view_call(views[token.value], apps)
        earlier = parts[significant[pos - 2]] if pos > 1 else None
        if before is not None and before.is_keyword("IN"):
            out[i] = f"(SELECT * FROM {call})"
        elif (  # the canonical form of `IN t` is `IN (t)`
            before is not None
            and before.text == "("
            and earlier is not None
            and earlier.is_keyword("IN")
            and after
            and after[0].text == ")"
        ):
            out[i] = f"SELECT * FROM {call}"
        elif after and after[0].is_keyword("AS"):
            out[i] = call
        else:
            out[i] = f"{call} AS {token.value}"
    return "".join(out)
