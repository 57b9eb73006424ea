"""Reading a build manifest's YAML into a node tree within bounds, and the node readers its
keys are parsed with.

libyaml's parser (PyYAML's own where PyYAML was built without it) feeds PyYAML's composer,
in safe mode: the nodes keep their start marks, so every error names the manifest line as well
as the field, and nothing is constructed beyond single scalars, by the safe constructor's rules
(YAML 1.1: `yes` is a boolean, `1_000` an integer). Only the standard tags are accepted.

Bounds, each refused with a ManifestError before the work or memory can grow past it:

- `MAX_MANIFEST_BYTES`, 64 KiB of UTF-8, checked before parsing. A real manifest is a few KiB;
  this is room for long scripts.
- `MAX_DEPTH`, 32 levels of nesting (a manifest needs five: `triggers[0].to[1]`), counted with
  aliases expanded, so every later walk of the tree is as shallow.
- `MAX_EXPANDED_SIZE`: the document's size with every alias expanded, one per node plus one
  per character of scalar text, so an alias to a long string costs that string again. Anchors,
  aliases and `<<` merge keys are allowed, as in builds.sr.ht (which reads manifests with
  PyYAML and go-yaml, both with aliases) and as people write them to share an environment;
  a document without aliases stays under about 2.5 units a byte, so only expansion (the
  "billion laughs") reaches the bound, and it is refused at the alias that crosses it, having
  composed no more than the text. An alias inside the node it names (a cycle) is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from schemas.validation import Invalid

MAX_MANIFEST_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_EXPANDED_SIZE = 4 * MAX_MANIFEST_BYTES
MAX_INTEGER = 2**63 - 1

_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null"))
MAP, SEQ = f"{_TAG}map", f"{_TAG}seq"
MERGE = f"{_TAG}merge"
_FOUND = {STR: "a string", INT: "an integer", FLOAT: "a number", BOOL: "a boolean"}
_FOUND |= {NULL: "nothing (null)", f"{_TAG}timestamp": "a date", f"{_TAG}binary": "binary data"}

_SCALARS = SafeConstructor()
"""Stateless for single scalars: its `construct_yaml_*` methods only read the node."""


class ManifestError(Invalid):
    """A manifest that cannot be run: `field` is the path in the manifest (`tasks[2].build`,
    empty for the document itself), `line` its 1-based line when known; `message` says both."""

    def __init__(self, message: str, field: str, line: int | None) -> None:
        where = [f"line {line}"] if line is not None else []
        full = ": ".join([*where, *([field] if field else []), message])
        super().__init__(field, full)
        self.args = (full,)
        self.reason = message
        self.line = line


def line_of(node: Node) -> int | None:
    return _line(node.start_mark)


def fail(node: Node, field: str, message: str) -> NoReturn:
    raise ManifestError(message, field, line_of(node))


class _Marked(Protocol):
    @property
    def line(self) -> int: ...


def _line(mark: _Marked | None) -> int | None:
    return None if mark is None else mark.line + 1


class _Refused(Exception):
    def __init__(self, reason: str, mark: _Marked | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = _line(mark)


class _BoundedComposer(Composer, Resolver):
    """PyYAML's composer over any parser's events, measuring each node as it is composed: its
    size and height with aliases expanded."""

    def __init__(self) -> None:
        Composer.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._deepest = 0
        self._size = 0
        self._measures: dict[object, tuple[int, int]] = {}

    # The parser's, from a base after this one in the loader's MRO:
    peek_event: Callable[[], Any]
    dispose: Callable[[], None]

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event: NodeEvent = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self.anchors:  # else PyYAML refuses the undefined alias
                measure = self._measures.get(event.anchor)
                if measure is None:
                    raise _Refused(
                        "an alias may not refer to a node that contains it", event.start_mark
                    )
                self._grow(measure[0], event.start_mark)
                self._reach(self._depth + 1 + measure[1], event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        self._reach(self._depth, event.start_mark)
        size_before, deepest_before, self._deepest = self._size, self._deepest, self._depth
        node = super().compose_node(parent, index)
        self._grow(1 + (len(node.value) if isinstance(node, ScalarNode) else 0), event.start_mark)
        if event.anchor is not None:
            self._measures[event.anchor] = (self._size - size_before, self._deepest - self._depth)
        self._deepest = max(self._deepest, deepest_before)
        self._depth -= 1
        return node

    def _grow(self, units: int, mark: _Marked | None) -> None:
        self._size += units
        if self._size > MAX_EXPANDED_SIZE:
            raise _Refused(
                f"the manifest expands beyond {MAX_EXPANDED_SIZE} nodes and characters "
                "(aliases are counted as many times as they are used)",
                mark,
            )

    def _reach(self, depth: int, mark: _Marked | None) -> None:
        self._deepest = max(self._deepest, depth)
        if depth > MAX_DEPTH:
            raise _Refused(f"the manifest is nested deeper than {MAX_DEPTH} levels", mark)


class _PythonLoader(_BoundedComposer, Reader, Scanner, Parser):
    """PyYAML's own parser, where PyYAML was built without libyaml."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedComposer.__init__(self)


_Loader: Callable[[str], _BoundedComposer] = _PythonLoader
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _LibyamlLoader(_BoundedComposer, CParser):
        """libyaml's parser (C, fast) under the bounded composer."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _BoundedComposer.__init__(self)

    _Loader = _LibyamlLoader


def compose(text: str) -> MappingNode:
    """The manifest's top-level mapping node; raises ManifestError for anything else."""
    size = len(text.encode("utf-8", "surrogatepass"))  # linear, and far cheaper than parsing
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"the manifest is {size} bytes; at most {MAX_MANIFEST_BYTES} are accepted", "", None
        )
    unprintable = Reader.NON_PRINTABLE.search(text)
    if unprintable:  # both parsers refuse these, each its own way; one message for them
        line = text.count("\n", 0, unprintable.start()) + 1
        code = ord(unprintable.group())
        raise ManifestError(f"character U+{code:04X} is not allowed in YAML", "", line)
    loader: _BoundedComposer | None = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
    except _Refused as exc:
        raise ManifestError(exc.reason, "", exc.line) from None
    except yaml.MarkedYAMLError as exc:
        said = "; ".join(part for part in (exc.context, exc.problem) if part)
        mark = exc.problem_mark or exc.context_mark
        raise ManifestError(f"invalid YAML: {said}", "", _line(mark)) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}", "", None) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise ManifestError("the manifest is empty", "", None)
    if not isinstance(root, MappingNode) or root.tag != MAP:
        fail(root, "", f"the manifest must be a mapping (of image, tasks…), not {found(root)}")
    return root


# Node readers -------------------------------------------------------------------------------


def found(node: Node) -> str:
    if isinstance(node, SequenceNode) and node.tag == SEQ:
        return "a list"
    if isinstance(node, MappingNode) and node.tag == MAP:
        return "a mapping"
    return _FOUND.get(node.tag, f"a value tagged {node.tag}")


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def entries(node: Node, path: str) -> dict[str, tuple[ScalarNode, Node]]:
    """A mapping's keys (strings) to their key and value nodes, `<<` merges applied as YAML 1.1
    says (explicit keys win, then the first merged mapping); a repeated key is refused."""
    if not isinstance(node, MappingNode) or node.tag != MAP:
        fail(node, path, f"expected a mapping, found {found(node)}")
    merged: dict[str, tuple[ScalarNode, Node]] = {}
    explicit: dict[str, tuple[ScalarNode, Node]] = {}
    for key, value in node.value:
        if key.tag == MERGE:
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in sources:
                for name, pair in entries(source, path).items():
                    merged.setdefault(name, pair)
            continue
        if not isinstance(key, ScalarNode) or key.tag != STR:
            fail(key, path, f"keys must be strings, found {found(key)}")
        if key.value in explicit:
            first = line_of(explicit[key.value][0])
            fail(key, join(path, key.value), f"duplicate key (first on line {first})")
        explicit[key.value] = (key, value)
    return {**{k: v for k, v in merged.items() if k not in explicit}, **explicit}


def items(node: Node, path: str) -> list[Node]:
    if not isinstance(node, SequenceNode) or node.tag != SEQ:
        fail(node, path, f"expected a list, found {found(node)}")
    return list(node.value)


def text(node: Node, path: str) -> str:
    if not isinstance(node, ScalarNode) or node.tag != STR:
        fail(node, path, f"expected a string, found {found(node)}")
    return str(node.value)


def integer(node: Node, path: str) -> int:
    """An integer JSON consumers can hold (64 bits, signed), as the job's events carry it."""
    if not isinstance(node, ScalarNode) or node.tag != INT:
        fail(node, path, f"expected an integer, found {found(node)}")
    try:
        number = int(_SCALARS.construct_yaml_int(node))
    except (ValueError, IndexError):  # `!!int x`, `!!int ''`, or more digits than Python takes
        if not str(node.value).lstrip("+-").replace("_", "").isdigit():
            fail(node, path, f"{_quoted(node)} is not an integer")
        number = MAX_INTEGER + 1
    if not -MAX_INTEGER - 1 <= number <= MAX_INTEGER:
        fail(node, path, "the integer is too large (quote it to pass it as text)")
    return number


def boolean(node: Node, path: str) -> bool:
    if not isinstance(node, ScalarNode) or node.tag != BOOL:
        fail(node, path, f"expected true or false, found {found(node)}")
    try:
        return bool(_SCALARS.construct_yaml_bool(node))
    except KeyError:  # `!!bool maybe`
        fail(node, path, f"expected true or false, found {_quoted(node)}")


def plain_scalar(node: Node, path: str) -> str | int | float | bool:
    """A string, an integer, a finite number or a boolean."""
    if isinstance(node, ScalarNode):
        if node.tag == STR:
            return str(node.value)
        if node.tag == BOOL:
            return boolean(node, path)
        if node.tag == INT:
            return integer(node, path)
        if node.tag == FLOAT:
            try:
                number = float(_SCALARS.construct_yaml_float(node))
            except (ValueError, IndexError):  # `!!float x`, `!!float ''`
                fail(node, path, f"{_quoted(node)} is not a number")
            if not math.isfinite(number):
                fail(node, path, "expected a finite number")
            return number
    fail(node, path, f"expected a string, a number or a boolean, found {found(node)}")


def _quoted(node: ScalarNode) -> str:
    value = str(node.value)
    return repr(value if len(value) <= 40 else value[:40] + "…")


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL
