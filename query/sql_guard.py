"""The checks and the rewrite behind POST /api/sql, as pure functions of ClickHouse's own output.

query/sql_scope.py drives them; the steps, in order, each able to refuse the query:

1. ClickHouse parses the text (`formatQuerySingleLine`, the text bound as a parameter, never
   run): exactly one statement, given back canonical, without comments.
2. `check_syntax` reads `EXPLAIN AST` of that canonical text (a parse, never a run): a SELECT,
   without SETTINGS, FORMAT or INTO OUTFILE, without table functions, without functions that
   reach outside the query's tables, and naming no table (after FROM or JOIN, or as `IN t`)
   but the queryable ones and the query's own CTEs, whose names may not be a table's. This
   step must hold alone for names: the analyzer runs scalar subqueries while it resolves
   (step 4), so a table they read leaves no trace in the tree it prints.
3. `rewrite` (query/sql_rewrite.py) points every reference to a queryable table at its scoped
   view, a parameterized view bound to the developer's apps
   (`hutch_scoped.telemetry_events(apps = ['a', 'b'])`).
4. `check_resolution` reads `EXPLAIN QUERY TREE` of the rewritten text, which is ClickHouse's
   analyzer resolving every name (CTEs, aliases, `IN table`, subqueries): every storage the
   query reads must be a scoped view called with exactly the developer's apps (or the
   one-row `system.one` of a SELECT without FROM).
The rewrite is a convenience that security does not rest on: whatever it misses, step 4
refuses. The query then runs with the base tables filtered again by `additional_table_filters`
and read-only settings (query/sql_scope.py).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

DENIED_FUNCTIONS = frozenset(
    {
        "file",  # reads server files
        "joinget",
        "joingetornull",
        "hascolumnintable",
        "getsetting",
        "getsettingordefault",
        "getmacro",
        "catboostevaluate",
        "naivebayesclassifier",
        "evalmlmethod",
        "modelevaluate",
        "hostname",
        "fqdn",
        "serveruuid",
        "getoskernelversion",
        "uptime",
        "tcpport",
        "showcertificate",
        "getclienthttpheader",
        "zookeepersessionuptime",
        "generateserialid",  # writes to Keeper
        "logtrace",  # writes to the server log
        "sleep",
        "sleepeachrow",
        "reversednsquery",
        "trainentropylearnedhash",
        "preparetrainentropylearnedhash",
        "entropylearnedhash",
        "pggetuserbyid",
        "pgtableisvisible",
    }
)
DENIED_PREFIXES = ("dict", "__", "filesystem", "addressto", "getserver", "getmergetree")


class Refused(Exception):
    """The query is not one Hutch will run; the message says why, for the analyst."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def denied(function: str) -> bool:
    name = function.lower()
    return name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES)


# EXPLAIN AST ---------------------------------------------------------------------------------

_CHILDREN = re.compile(r" \(children \d+\)$")


@dataclass(frozen=True, slots=True)
class AstNode:
    depth: int
    kind: str
    detail: str
    """What follows the kind, without the child count: a name, a literal, `(alias x)`."""

    @property
    def name(self) -> str:
        return self.detail.split(" ", 1)[0]


def ast_nodes(text: str) -> list[AstNode]:
    """EXPLAIN AST output (one node a line, one space of indent per level) as a flat list."""
    nodes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        body = line.lstrip(" ")
        kind, _, detail = _CHILDREN.sub("", body).partition(" ")
        nodes.append(AstNode(len(line) - len(body), kind, detail))
    return nodes


IN_FUNCTIONS = frozenset(
    {"in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin"}
    | {"globalnotnullin"}
)
_ALIASED = re.compile(r"^(\S+) \(alias .*\)$")


def _named(detail: str, names: Collection[str]) -> bool:
    """Whether an AST node's detail (`t` or `t (alias x)`) is one of `names`."""
    if detail in names:
        return True
    match = _ALIASED.match(detail)
    return match is not None and match.group(1) in names


def check_syntax(ast_text: str, tables: Collection[str], ctes: Collection[str]) -> None:
    """Refuse what is not one plain SELECT over `tables` and the query's CTEs `ctes`."""
    nodes = ast_nodes(ast_text)
    if not nodes or nodes[0].kind != "SelectWithUnionQuery":
        kind = nodes[0].kind if nodes else "empty statement"
        raise Refused(f"only a SELECT (or WITH ... SELECT) query can run here, not {kind}")
    if sum(1 for n in nodes if n.depth == 1) != 1:
        raise Refused("FORMAT and INTO OUTFILE are not allowed: results are always JSON")
    known = ", ".join(sorted(tables))
    readable = {*tables, *ctes}
    for i, node in enumerate(nodes):
        if node.kind == "Set":
            raise Refused("SETTINGS are not allowed: Hutch sets the query's limits")
        if node.kind == "TableExpression":
            for child in _children(nodes, i):
                if nodes[child].kind == "Function":
                    raise Refused(
                        f"table functions such as {nodes[child].name}() are not allowed; "
                        f"query the tables: {known}"
                    )
        elif node.kind == "TableIdentifier" and not _named(node.detail, readable):
            raise Refused(
                f"{node.name} is not a table you can query (name tables without a database); "
                f"the tables are: {known}"
            )
        elif node.kind == "Function" and denied(node.name):
            raise Refused(f"function {node.name}() is not allowed here")
        elif node.kind == "Function" and node.name.lower() in IN_FUNCTIONS:
            _check_in(nodes, i, readable, known)


def _check_in(nodes: list[AstNode], index: int, readable: set[str], known: str) -> None:
    """`x IN t` names a table: it must be one the query may read."""
    for arguments in _children(nodes, index):
        operands = [nodes[j] for j in _children(nodes, arguments)]
        table = operands[1] if len(operands) == 2 else None
        if table is not None and table.kind == "Identifier" and not _named(table.detail, readable):
            raise Refused(
                f"IN {operands[1].name}: not a table you can query; the tables are: {known}"
            )


def _children(nodes: list[AstNode], index: int) -> Iterator[int]:
    """Indices of the node's direct children."""
    depth = nodes[index].depth
    for j in range(index + 1, len(nodes)):
        if nodes[j].depth <= depth:
            return
        if nodes[j].depth == depth + 1:
            yield j


# EXPLAIN QUERY TREE --------------------------------------------------------------------------

_ID = re.compile(r"\bid: \d+(, )?")


def expected_arguments(apps: list[str]) -> list[tuple[int, str]]:
    """A scoped view's call as the query tree shows it, as (relative depth, text) lines."""
    constant = "Array_[" + ", ".join(repr(a) for a in apps) + "]"
    return [
        (1, "ARGUMENTS"),
        (2, "LIST nodes: 1"),
        (3, "FUNCTION function_name: equals, function_type: ordinary"),
        (4, "ARGUMENTS"),
        (5, "LIST nodes: 2"),
        (6, "IDENTIFIER identifier: apps"),
        (6, f"CONSTANT constant_value: {constant}, constant_value_type: Array(String)"),
    ]


def check_resolution(tree_text: str, views: Mapping[str, str], apps: list[str]) -> None:
    """Every storage read is a scoped view called with exactly `apps`, or system.one."""
    lines = [line for line in tree_text.splitlines() if line.strip()]
    allowed = set(views.values())
    expected = expected_arguments(apps)
    for i, line in enumerate(lines):
        body = line.lstrip(" ")
        kind = body.split(" id: ", 1)[0]
        if kind == "TABLE":
            table = body.rpartition(", table_name: ")[2]
            if table != "system.one":
                raise Refused(
                    f"the query reads {table}, which is not one of the tables you can query"
                )
        elif kind == "TABLE_FUNCTION":
            name, _, extra = body.rpartition(", table_function_name: ")[2].partition(", ")
            if name in allowed and extra:  # `final: 1`, `sample_size: ...`
                raise Refused("FINAL and SAMPLE are not supported on these tables")
            if name not in allowed or _subtree(lines, i) != expected:
                raise Refused(f"table function {name}() is not allowed")
        elif kind == "FUNCTION":
            match = re.search(r"function_name: ([^,]+)", body)
            # The analyzer writes internal functions (__getScalar) for scalar subqueries;
            # a user's own were refused in check_syntax.
            if match and not match.group(1).startswith("__") and denied(match.group(1)):
                raise Refused(f"function {match.group(1)}() is not allowed here")


def _subtree(lines: list[str], index: int) -> list[tuple[int, str]]:
    """The lines below `index` as (depth relative to it, text without node ids)."""
    depth = len(lines[index]) - len(lines[index].lstrip(" "))
    found = []
    for line in lines[index + 1 :]:
        own = len(line) - len(line.lstrip(" "))
        if own <= depth:
            break
        found.append(((own - depth) // 2, _ID.sub("", line.strip())))
    return found
