"""The OData query options the simulated Graph understands: $filter, $select, $expand, $top,
$orderby and opaque $skiptoken paging.

``$filter`` supports comparisons (eq, ne, gt, ge, lt, le), ``in (…)``, ``and``/``or``,
parentheses, ``startswith(prop,'x')`` and lambdas (``targetResources/any(t: t/id eq '…')``).
Each route declares which properties and operators it accepts (``FilterSpec``), so a query that
Graph documents as unsupported is refused with a 400 instead of silently answered.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from app.simulator.errors import BAD_REQUEST, GraphError
from app.simulator.timefmt import parse_datetime

T = TypeVar("T")

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
      | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<punct>[(),:])
      | (?P<word>[A-Za-z_@$][\w.@$]*(?:/[A-Za-z_@$][\w.@$]*)*)
    )""",
    re.VERBOSE,
)


def _bad(message: str) -> GraphError:
    return GraphError(400, BAD_REQUEST, message)


# --- filter AST ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Path:
    segments: tuple[str, ...]

    @property
    def name(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Compare:
    left: Path | Literal
    op: str
    right: Path | Literal


@dataclass(frozen=True)
class In:
    path: Path
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Func:
    name: str
    path: Path
    argument: Any


@dataclass(frozen=True)
class Lambda:
    path: Path
    quantifier: str  # any | all
    variable: str
    body: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


Node = Compare | In | Func | Lambda | BoolOp | Not


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                raise _bad(f"Invalid filter clause: unexpected text at '{text[position:][:30]}'.")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _bad("Invalid filter clause: the expression ended too early.")
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        _, text = self.take()
        if text.lower() != value:
            raise _bad(f"Invalid filter clause: expected '{value}', found '{text}'.")

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() in words

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek() is not None:
            raise _bad(f"Invalid filter clause: unexpected '{self.peek()[1]}'.")  # type: ignore[index]
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.at_word("or"):
            self.take()
            node = BoolOp("or", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_unary()
        while self.at_word("and"):
            self.take()
            node = BoolOp("and", node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        if self.at_word("not"):
            self.take()
            return Not(self.parse_unary())
        token = self.peek()
        if token is not None and token == ("punct", "("):
            self.take()
            node = self.parse_or()
            self.expect(")")
            return node
        return self.parse_predicate()

    def parse_value(self) -> Literal | Path:
        kind, text = self.take()
        if kind == "string":
            return Literal(text[1:-1].replace("''", "'"))
        if kind == "datetime":
            return Literal(parse_datetime(text))
        if kind == "guid":
            return Literal(text)
        if kind == "number":
            return Literal(float(text) if "." in text else int(text))
        if kind == "word":
            lowered = text.lower()
            if lowered in {"true", "false"}:
                return Literal(lowered == "true")
            if lowered == "null":
                return Literal(None)
            return Path(tuple(text.split("/")))
        raise _bad(f"Invalid filter clause: unexpected '{text}'.")

    def parse_predicate(self) -> Node:
        token = self.peek()
        if token and token[0] == "word" and self.index + 1 < len(self.tokens):
            following = self.tokens[self.index + 1]
            if following == ("punct", "("):
                return self.parse_call()
        left = self.parse_value()
        if self.at_word("in"):
            self.take()
            if not isinstance(left, Path):
                raise _bad("Invalid filter clause: 'in' needs a property on its left.")
            self.expect("(")
            values: list[Any] = []
            while True:
                value = self.parse_value()
                if not isinstance(value, Literal):
                    raise _bad("Invalid filter clause: 'in' takes literal values.")
                values.append(value.value)
                _, text = self.take()
                if text == ")":
                    break
                if text != ",":
                    raise _bad("Invalid filter clause: expected ',' or ')' in an 'in' list.")
            return In(left, tuple(values))
        if not self.at_word(*COMPARISONS):
            found = self.peek()[1] if self.peek() else "end of expression"  # type: ignore[index]
            raise _bad(f"Invalid filter clause: expected an operator, found '{found}'.")
        op = self.take()[1].lower()
        right = self.parse_value()
        return Compare(left, op, right)

    def parse_call(self) -> Node:
        _, word = self.take()
        self.expect("(")
        segments = word.split("/")
        if segments[-1].lower() in {"any", "all"}:
            collection = Path(tuple(segments[:-1]))
            _, variable = self.take()
            self.expect(":")
            body = self.parse_or()
            self.expect(")")
            return Lambda(collection, segments[-1].lower(), variable, body)
        name = word.lower()
        if name not in {"startswith", "endswith", "contains"}:
            raise _bad(f"Invalid filter clause: the function '{word}' is not supported.")
        path = self.parse_value()
        if not isinstance(path, Path):
            raise _bad(f"Invalid filter clause: {word} needs a property as first argument.")
        self.expect(",")
        argument = self.parse_value()
        if not isinstance(argument, Literal) or not isinstance(argument.value, str):
            raise _bad(f"Invalid filter clause: {word} needs a string as second argument.")
        self.expect(")")
        return Func(name, path, argument.value)


def parse_filter(text: str) -> Node:
    if not text.strip():
        raise _bad("Invalid filter clause: the expression is empty.")
    return _Parser(text).parse()


# --- validation against what a route supports ------------------------------------------------
@dataclass(frozen=True)
class FilterSpec:
    """Properties (``a/b`` paths) a route filters on, with the operators allowed for each.

    Operators: comparison names, ``in``, ``startswith`` and ``any`` (for lambda collections).
    """

    properties: Mapping[str, frozenset[str]]
    allow_or: bool = True
    unsupported_code: str = BAD_REQUEST

    def check(self, node: Node, prefix: str = "") -> None:
        if isinstance(node, BoolOp):
            if node.op == "or" and not self.allow_or:
                raise GraphError(400, self.unsupported_code, "The 'or' operator is not supported.")
            self.check(node.left, prefix)
            self.check(node.right, prefix)
        elif isinstance(node, Not):
            raise GraphError(400, self.unsupported_code, "The 'not' operator is not supported.")
        elif isinstance(node, Compare):
            path = node.left if isinstance(node.left, Path) else node.right
            if not isinstance(path, Path):
                raise _bad("Invalid filter clause: a comparison needs a property.")
            self._allow(prefix + self._name(path), node.op)
        elif isinstance(node, In):
            self._allow(prefix + self._name(node.path), "in")
        elif isinstance(node, Func):
            self._allow(prefix + self._name(node.path), node.name)
        else:
            self._allow(prefix + node.path.name, node.quantifier)
            inner = prefix + node.path.name + "/"
            self._check_lambda(node.body, node.variable, inner)

    def _check_lambda(self, node: Node, variable: str, prefix: str) -> None:
        if isinstance(node, BoolOp):
            self._check_lambda(node.left, variable, prefix)
            self._check_lambda(node.right, variable, prefix)
            return
        path = None
        if isinstance(node, Compare):
            path = node.left if isinstance(node.left, Path) else node.right
        elif isinstance(node, In | Func):
            path = node.path
        if not isinstance(path, Path) or path.segments[0] != variable:
            raise _bad(f"Invalid filter clause: lambda body must use the variable '{variable}'.")
        op = node.op if isinstance(node, Compare) else "in" if isinstance(node, In) else "?"
        if isinstance(node, Func):
            op = node.name
        self._allow(prefix + "/".join(path.segments[1:]), op)

    @staticmethod
    def _name(path: Path) -> str:
        return path.name

    def _allow(self, name: str, op: str) -> None:
        for known, ops in self.properties.items():
            if known.lower() == name.lower():
                if op not in ops:
                    raise GraphError(
                        400,
                        self.unsupported_code,
                        f"Invalid filter clause: the operator '{op}' is not supported on '{name}'.",
                    )
                return
        raise GraphError(
            400,
            self.unsupported_code,
            f"Invalid filter clause: the property '{name}' is not supported in $filter.",
        )


def spec(
    properties: Mapping[str, Iterable[str]],
    *,
    allow_or: bool = True,
    unsupported_code: str = BAD_REQUEST,
) -> FilterSpec:
    return FilterSpec(
        {name: frozenset(ops) for name, ops in properties.items()},
        allow_or=allow_or,
        unsupported_code=unsupported_code,
    )


# --- evaluation --------------------------------------------------------------------------------
Resolver = Callable[[Any, Sequence[str]], Any]


def resolve_mapping(record: Any, segments: Sequence[str]) -> Any:
    """Walk a JSON-like object by case-insensitive property names."""
    value = record
    for segment in segments:
        if not isinstance(value, Mapping):
            return None
        if segment in value:
            value = value[segment]
            continue
        lowered = segment.lower()
        value = next((v for k, v in value.items() if str(k).lower() == lowered), None)
    return value


def _normalise(value: Any, other: Any) -> tuple[Any, Any]:
    if isinstance(other, datetime) and isinstance(value, str):
        try:
            value = parse_datetime(value)
        except ValueError:
            return value, other
    if isinstance(value, str) and isinstance(other, str):
        return value.lower(), other.lower()
    return value, other


def _compare(value: Any, op: str, other: Any) -> bool:
    value, other = _normalise(value, other)
    if op == "eq":
        return bool(value == other)
    if op == "ne":
        return bool(value != other)
    if value is None or other is None:
        return False
    try:
        if op == "gt":
            return bool(value > other)
        if op == "ge":
            return bool(value >= other)
        if op == "lt":
            return bool(value < other)
        return bool(value <= other)
    except TypeError:
        return False


def evaluate(node: Node, record: Any, resolver: Resolver = resolve_mapping) -> bool:
    if isinstance(node, BoolOp):
        if node.op == "and":
            return evaluate(node.left, record, resolver) and evaluate(node.right, record, resolver)
        return evaluate(node.left, record, resolver) or evaluate(node.right, record, resolver)
    if isinstance(node, Not):
        return not evaluate(node.operand, record, resolver)
    if isinstance(node, Compare):
        if isinstance(node.left, Path):
            left = resolver(record, node.left.segments)
            right = (
                resolver(record, node.right.segments)
                if isinstance(node.right, Path)
                else node.right.value
            )
            return _compare(left, node.op, right)
        flipped = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(node.op, node.op)
        assert isinstance(node.right, Path)
        return _compare(resolver(record, node.right.segments), flipped, node.left.value)
    if isinstance(node, In):
        value = resolver(record, node.path.segments)
        return any(_compare(value, "eq", candidate) for candidate in node.values)
    if isinstance(node, Func):
        value = resolver(record, node.path.segments)
        if not isinstance(value, str):
            return False
        needle = str(node.argument).lower()
        if node.name == "startswith":
            return value.lower().startswith(needle)
        if node.name == "endswith":
            return value.lower().endswith(needle)
        return needle in value.lower()
    collection = resolver(record, node.path.segments)
    items = collection if isinstance(collection, list) else []

    def element_resolver(item: Any, segments: Sequence[str]) -> Any:
        if segments and segments[0] == node.variable:
            return resolve_mapping(item, segments[1:])
        return resolver(record, segments)

    results = (evaluate(node.body, item, element_resolver) for item in items)
    return any(results) if node.quantifier == "any" else all(results)


def equality_values(node: Node | None, name: str) -> set[str] | None:
    """Values a top-level ``and``-conjunct pins ``name`` to (``eq`` or ``in``), for index use."""
    if node is None:
        return None
    if isinstance(node, BoolOp) and node.op == "and":
        left = equality_values(node.left, name)
        right = equality_values(node.right, name)
        if left is not None and right is not None:
            return left & right
        return left if left is not None else right
    if (
        isinstance(node, Compare)
        and node.op == "eq"
        and isinstance(node.left, Path)
        and node.left.name.lower() == name.lower()
        and isinstance(node.right, Literal)
        and isinstance(node.right.value, str)
    ):
        return {node.right.value.lower()}
    if isinstance(node, In) and node.path.name.lower() == name.lower():
        return {str(v).lower() for v in node.values}
    return None


# --- $select / $expand / $top / $orderby -----------------------------------------------------
@dataclass(frozen=True)
class Expand:
    name: str
    options: dict[str, str] = field(default_factory=dict)


def split_top_level(text: str, separator: str = ",") -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == separator and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def parse_expand(text: str | None) -> list[Expand]:
    if not text:
        return []
    result: list[Expand] = []
    for part in split_top_level(text):
        match = re.fullmatch(r"([\w.]+)(?:\((.*)\))?", part.strip(), re.DOTALL)
        if not match:
            raise _bad(f"Invalid $expand: '{part}'.")
        options: dict[str, str] = {}
        for option in split_top_level(match.group(2) or "", ";"):
            key, _, value = option.partition("=")
            options[key.strip().lower()] = value.strip()
        result.append(Expand(match.group(1), options))
    return result


def parse_select(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise _bad("Invalid $select: no property named.")
    return names


def apply_select(
    item: dict[str, Any], names: Sequence[str] | None, known: Iterable[str], type_name: str
) -> dict[str, Any]:
    if names is None:
        return item
    lookup = {k.lower(): k for k in known}
    result: dict[str, Any] = {k: v for k, v in item.items() if k.startswith("@odata.")}
    for name in names:
        actual = lookup.get(name.lower())
        if actual is None:
            raise _bad(f"Could not find a property named '{name}' on type '{type_name}'.")
        result[actual] = item.get(actual)
    return result


def check_select(names: Sequence[str] | None, known: Iterable[str], type_name: str) -> None:
    if names is None:
        return
    lookup = {k.lower() for k in known}
    for name in names:
        if name.lower() not in lookup:
            raise _bad(f"Could not find a property named '{name}' on type '{type_name}'.")


def parse_top(text: str | None, *, maximum: int = 999) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise _bad(f"Invalid $top value '{text}': an integer is required.") from None
    if not 1 <= value <= maximum:
        raise _bad(f"Invalid $top value '{text}': it must be between 1 and {maximum}.")
    return value


# --- paging ------------------------------------------------------------------------------------
def encode_token(position: Any) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> Any:
    try:
        padded = token + "=" * (-len(token) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError):
        raise _bad("The $skiptoken is invalid or has expired.") from None


def page(
    items: Sequence[T],
    key: Callable[[T], Any],
    *,
    skiptoken: str | None,
    size: int,
) -> tuple[list[T], str | None]:
    """One page of ``items`` (already in output order) after the item a token points at.

    The token holds the sort key of the last item returned, not an offset, so an item added or
    removed between two page requests never makes a later page skip or repeat another item.
    """
    start = 0
    if skiptoken:
        after = decode_token(skiptoken)
        start = next(
            (i for i, item in enumerate(items) if _key_after(key(item), after)), len(items)
        )
    chunk = list(items[start : start + size])
    more = start + size < len(items)
    return chunk, encode_token(key(chunk[-1])) if more and chunk else None


def _key_after(key: Any, after: Any) -> bool:
    # Keys are JSON-able tuples/lists; "after" means strictly later in output order.
    return bool(list(key) > list(after)) if isinstance(key, list | tuple) else bool(key > after)
