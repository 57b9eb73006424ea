"""The shape check behind POST /api/sql: pure functions of ClickHouse's canonical text and AST.

query/sql_scope.py drives them, before anything of the caller's is evaluated:

1. ClickHouse parses the text (`formatQuerySingleLine`, the text bound as a parameter, never
   run): exactly one statement, given back canonical, without comments.
2. `check_identifiers` reads that canonical text: no quoted identifier holds a backslash
   escape or a control character (EXPLAIN AST prints names raw, so a line feed in a name
   would forge lines of the tree read in step 3), and no parameter is of type Identifier.
3. `check_syntax` reads `EXPLAIN AST` of the canonical text (a parse, never a run): one
   SELECT, without SETTINGS, FORMAT or INTO OUTFILE, without table functions, without
   functions that reach outside the query's tables, and with no name that carries a
   database: every table named (after FROM or JOIN, or as `IN t`) is a bare name.

Nothing here decides which tables a name reaches: the query runs with a scope database as its
current database, where every bare name resolves to a view of the caller's rows or to
nothing (query/sql_scope.py). These checks make sure a name cannot leave that database.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
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


# The canonical text -------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<string>'(?:[^'\\]|\\.)*')
      |(?P<quoted>`(?:[^`\\]|\\.)*`|"(?:[^"\\]|\\.)*")
      |(?P<param>\{\s*[A-Za-z_][A-Za-z0-9_]*\s*:[^{}]*\})
      |(?P<other>[^'`"{]+|.)""",
    re.VERBOSE | re.DOTALL,
)
_IDENTIFIER_PARAM = re.compile(r":\s*Identifier\s*\}$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def check_identifiers(canonical: str) -> None:
    """Quoted names are plain text, and no query parameter stands for a name."""
    for match in _TOKEN.finditer(canonical):
        kind, text = match.lastgroup, match.group()
        if kind == "quoted" and _CONTROL.search(text[1:-1]):
            raise Refused("quoted names may not contain backslashes or control characters")
        if kind == "param" and _IDENTIFIER_PARAM.search(text):
            raise Refused("query parameters of type Identifier are not allowed")


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
STATEMENTS_INSIDE = frozenset({"ExplainQuery", "ShowTablesQuery", "DescribeQuery"})


def check_syntax(ast_text: str, databases: Collection[str], tables: Collection[str]) -> None:
    """Refuse what is not one plain SELECT whose names stay in the current database.

    `databases` are the engine's database names: an expression `db.x` may be a table in
    `IN db.x`, so a dotted name whose first part is a database is refused wherever it is.
    `tables` only make the messages helpful."""
    nodes = ast_nodes(ast_text)
    if not nodes or nodes[0].kind != "SelectWithUnionQuery":
        kind = nodes[0].kind if nodes else "empty statement"
        raise Refused(f"only a SELECT (or WITH ... SELECT) query can run here, not {kind}")
    if sum(1 for n in nodes if n.depth == 1) != 1:
        raise Refused("FORMAT and INTO OUTFILE are not allowed: results are always JSON")
    known = ", ".join(sorted(tables))
    for i, node in enumerate(nodes):
        if node.kind == "Set":
            raise Refused("SETTINGS are not allowed: Hutch sets the query's limits")
        if node.kind in STATEMENTS_INSIDE:
            raise Refused("only SELECT queries can run here, also inside a query")
        if node.kind == "TableExpression":
            for child in _children(nodes, i):
                if nodes[child].kind == "Function":
                    raise Refused(
                        f"table functions such as {nodes[child].name}() are not allowed; "
                        f"query the tables: {known}"
                    )
        elif node.kind == "TableIdentifier" and "." in node.detail:
            raise Refused(
                f"{node.name} is not a table you can query (name tables without a database); "
                f"the tables are: {known}"
            )
        elif node.kind == "Identifier" and node.name.split(".", 1)[0] in databases:
            raise Refused(
                f"{node.name}: names may not reach into a database; the tables are: {known}"
            )
        elif node.kind == "Function" and denied(node.name):
            raise Refused(f"function {node.name}() is not allowed here")
        elif node.kind == "Function" and node.name.lower() in IN_FUNCTIONS:
            _check_in(nodes, i, known)


def _check_in(nodes: list[AstNode], index: int, known: str) -> None:
    """`x IN t` names a table: a bare name, like any other table's."""
    for arguments in _children(nodes, index):
        operands = [nodes[j] for j in _children(nodes, arguments)]
        table = operands[1] if len(operands) == 2 else None
        if table is not None and table.kind == "Identifier" and "." in table.name:
            raise Refused(f"IN {table.name}: not a table you can query; the tables are: {known}")


def _children(nodes: list[AstNode], index: int) -> Iterator[int]:
    """Indices of the node's direct children."""
    depth = nodes[index].depth
    for j in range(index + 1, len(nodes)):
        if nodes[j].depth <= depth:
            return
        if nodes[j].depth == depth + 1:
            yield j
