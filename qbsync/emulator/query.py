"""The QuickBooks query language, as far as the emulator needs it. Pure: no I/O.

    SELECT * | COUNT(*) | field[, field] FROM Entity
      [WHERE cond [AND cond]...]
      [ORDERBY field [ASC|DESC][, ...]]      (ORDER BY is accepted too)
      [STARTPOSITION n] [MAXRESULTS m]

    cond := field (= | != | < | <= | > | >=) literal
          | field IN (literal[, literal]...)
          | field LIKE 'pattern with %'

Keywords, entity and field names are case-insensitive; string literals are in single
quotes with `\\'` escaping a quote; `true`/`false` are booleans. String comparisons ignore
case, as QuickBooks' do. MAXRESULTS defaults to 100 and is capped at 1000. Rows whose
Active is false are left out unless the query filters on Active.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from qbsync.emulator import clock
from qbsync.emulator.entities import QUERYABLE
from qbsync.emulator.errors import QboFault, query_invalid, query_parse_error

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_CAP = 1000

Literal = str | int | float | bool
Row = Mapping[str, Any]

_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "in",
    "like",
    "orderby",
    "order",
    "by",
    "asc",
    "desc",
    "startposition",
    "maxresults",
    "count",
    "true",
    "false",
}
_COMPARISONS = {"=", "!=", "<>", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Token:
    kind: str  # "ident", "keyword", "string", "number", "symbol", "end"
    text: str
    column: int
    value: Literal | None = None


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str  # one of _COMPARISONS (with "<>" written "!="), "in", "like"
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class Ordering:
    field: str
    descending: bool


@dataclass(frozen=True)
class Query:
    entity: str
    count: bool
    fields: tuple[str, ...] | None  # None: every field (`*`)
    conditions: tuple[Condition, ...]
    order_by: tuple[Ordering, ...]
    start_position: int
    max_results: int


@dataclass(frozen=True)
class QueryResult:
    entity: str
    rows: list[dict[str, Any]]
    start_position: int
    total_count: int | None  # only for COUNT(*)


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<symbol><=|>=|!=|<>|[=<>(),*;])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise query_parse_error(
                f'Lexical error at line 1, column {position + 1}. Encountered: "{text[position]}"'
            )
        kind = match.lastgroup or ""
        raw = match.group()
        column = position + 1
        position = match.end()
        if kind == "space":
            continue
        if kind == "string":
            tokens.append(Token("string", raw, column, re.sub(r"\\(.)", r"\1", raw[1:-1])))
        elif kind == "number":
            tokens.append(Token("number", raw, column, float(raw) if "." in raw else int(raw)))
        elif kind == "ident" and raw.lower() in _KEYWORDS:
            tokens.append(Token("keyword", raw.lower(), column))
        else:
            tokens.append(Token(kind, raw, column))
    tokens.append(Token("end", "<EOF>", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def fail(self, expecting: str) -> QboFault:
        token = self.current
        return query_parse_error(
            f'Encountered " {token.kind} "{token.text} "" at line 1, column {token.column}. '
            f"Was expecting: {expecting}"
        )

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        token = self.current
        if token.kind == kind and (text is None or token.text == text):
            return self.advance()
        return None

    def expect(self, kind: str, text: str | None = None) -> Token:
        token = self.accept(kind, text)
        if token is None:
            raise self.fail(repr(text) if text else kind)
        return token

    def identifier(self) -> str:
        token = self.current
        # Keywords double as field names only where a name is expected (e.g. "Count").
        if token.kind == "ident" or (token.kind == "keyword" and token.text == "count"):
            return self.advance().text
        raise self.fail("a name")

    def literal(self) -> Literal:
        token = self.current
        if token.kind in ("string", "number"):
            self.advance()
            assert token.value is not None
            return token.value
        if token.kind == "keyword" and token.text in ("true", "false"):
            self.advance()
            return token.text == "true"
        raise self.fail("a literal ('text', a number, true or false)")

    def integer(self) -> int:
        token = self.current
        if token.kind == "number" and isinstance(token.value, int):
            self.advance()
            return token.value
        raise self.fail("an integer")

    def parse(self) -> Query:
        self.expect("keyword", "select")
        count, fields = self.select_list()
        self.expect("keyword", "from")
        entity = self.identifier()
        conditions: list[Condition] = []
        if self.accept("keyword", "where"):
            conditions.append(self.condition())
            while self.accept("keyword", "and"):
                conditions.append(self.condition())
        order_by: list[Ordering] = []
        if self.accept("keyword", "orderby") or (
            self.accept("keyword", "order") and self.expect("keyword", "by")
        ):
            order_by.append(self.ordering())
            while self.accept("symbol", ","):
                order_by.append(self.ordering())
        start_position = 1
        max_results = DEFAULT_MAX_RESULTS
        for _ in range(2):
            if self.accept("keyword", "startposition"):
                start_position = max(1, self.integer())
            elif self.accept("keyword", "maxresults"):
                max_results = min(max(0, self.integer()), MAX_RESULTS_CAP)
        self.accept("symbol", ";")
        if self.current.kind != "end":
            raise self.fail("<EOF>")
        return Query(
            entity=entity,
            count=count,
            fields=fields,
            conditions=tuple(conditions),
            order_by=tuple(order_by),
            start_position=start_position,
            max_results=max_results,
        )

    def select_list(self) -> tuple[bool, tuple[str, ...] | None]:
        if self.accept("keyword", "count"):
            self.expect("symbol", "(")
            self.expect("symbol", "*")
            self.expect("symbol", ")")
            return True, None
        star = False
        names: list[str] = []
        while True:
            if self.accept("symbol", "*"):
                star = True
            else:
                names.append(self.identifier())
            if not self.accept("symbol", ","):
                break
        return False, None if star else tuple(names)

    def condition(self) -> Condition:
        name = self.identifier()
        token = self.current
        if token.kind == "symbol" and token.text in _COMPARISONS:
            self.advance()
            operator = "!=" if token.text == "<>" else token.text
            return Condition(name, operator, (self.literal(),))
        if self.accept("keyword", "in"):
            self.expect("symbol", "(")
            values = [self.literal()]
            while self.accept("symbol", ","):
                values.append(self.literal())
            self.expect("symbol", ")")
            return Condition(name, "in", tuple(values))
        if self.accept("keyword", "like"):
            pattern = self.current
            if pattern.kind != "string":
                raise self.fail("a quoted pattern")
            self.advance()
            assert isinstance(pattern.value, str)
            return Condition(name, "like", (pattern.value,))
        raise self.fail("one of =, !=, <, <=, >, >=, IN, LIKE")

    def ordering(self) -> Ordering:
        name = self.identifier()
        if self.accept("keyword", "desc"):
            return Ordering(name, True)
        self.accept("keyword", "asc")
        return Ordering(name, False)


def parse(text: str) -> Query:
    """Parse and validate a query; raises QboFault 4000 (syntax) or 4001 (names)."""
    query = _Parser(text).parse()
    entity = QUERYABLE.get(query.entity.lower())
    if entity is None:
        raise query_invalid(f"Invalid context declaration : {query.entity}")
    canonical = {name.lower(): name for name in entity.fields}

    def resolve(name: str) -> str:
        found = canonical.get(name.lower())
        if found is None:
            raise query_invalid(f"property '{name}' is not queryable")
        return found

    return Query(
        entity=entity.name,
        count=query.count,
        fields=None if query.fields is None else tuple(resolve(f) for f in query.fields),
        conditions=tuple(
            Condition(resolve(c.field), c.operator, c.values) for c in query.conditions
        ),
        order_by=tuple(Ordering(resolve(o.field), o.descending) for o in query.order_by),
        start_position=query.start_position,
        max_results=query.max_results,
    )


def field_value(row: Row, name: str) -> Any:
    """The value a query compares for `name` (a *Ref compares its `value`)."""
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    if isinstance(value, Mapping):
        for key in ("value", "Address", "FreeFormNumber", "URI"):
            if key in value:
                return value[key]
        return None
    return value


def _comparable(name: str, value: Any) -> Any:
    """Bring a stored value or a literal to the form both sides are compared in."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if name.startswith("MetaData."):
        try:
            return clock.parse_time(str(value))
        except ValueError:
            return None
    if name in ("Id", "SyncToken") or name.endswith("Ref"):
        text = str(value)
        return (0, int(text), "") if text.isdigit() else (1, 0, text.casefold())
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        lowered = value.casefold()
        if lowered in ("true", "false"):
            return lowered == "true"
        try:
            return float(value) if _looks_numeric(value) else lowered
        except ValueError:
            return lowered
    return str(value).casefold()


def _looks_numeric(text: str) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?", text.strip()) is not None


def _like(pattern: str) -> re.Pattern[str]:
    parts = (re.escape(part) for part in pattern.split("%"))
    return re.compile(".*".join(parts), re.IGNORECASE | re.DOTALL)


def _compare(operator: str, left: Any, right: Any) -> bool:
    try:
        if operator == "=":
            return bool(left == right)
        if operator == "!=":
            return bool(left != right)
        if operator == "<":
            return bool(left < right)
        if operator == "<=":
            return bool(left <= right)
        if operator == ">":
            return bool(left > right)
        if operator == ">=":
            return bool(left >= right)
    except TypeError:
        return False  # different kinds (text against a number) never match
    raise AssertionError(operator)


def compile_condition(condition: Condition) -> Callable[[Row], bool]:
    """A predicate for one condition, with its literals prepared once."""
    name = condition.field
    if name == "Active" and condition.operator in ("=", "in"):
        wanted = {_comparable(name, value) for value in condition.values}
        # The common case (every default query), kept cheap for 100,000-row realms.
        return lambda row: row.get("Active", True) in wanted
    absent_default: bool | None = None
    if name in ("Active", "Job", "Taxable"):
        absent_default = name == "Active"  # an absent boolean reads as its default
    if condition.operator == "like":
        pattern = _like(str(condition.values[0]))

        def like(row: Row) -> bool:
            raw = field_value(row, name)
            return isinstance(raw, str) and pattern.fullmatch(raw) is not None

        return like
    rights = [_comparable(name, value) for value in condition.values]
    operator = condition.operator

    def compare(row: Row) -> bool:
        raw = field_value(row, name)
        if raw is None:
            if absent_default is None:
                return False
            raw = absent_default
        left = _comparable(name, raw)
        if operator == "in":
            return any(_compare("=", left, right) for right in rights)
        return _compare(operator, left, rights[0])

    return compare


def _matches_every_row(condition: Condition) -> bool:
    """`Active IN (true, false)`: Active is always a boolean (absent reads as true)."""
    return (
        condition.field == "Active"
        and condition.operator in ("=", "in")
        and {_comparable("Active", value) for value in condition.values} >= {True, False}
    )


def matches(condition: Condition, row: Row) -> bool:
    return compile_condition(condition)(row)


def _sort_key(ordering: Ordering, row: Row) -> tuple[int, Any]:
    value = _comparable(ordering.field, field_value(row, ordering.field))
    if value is None:
        return (1, "")
    if isinstance(value, bool | int | float):
        return (0, (0, float(value), ""))
    if isinstance(value, tuple):
        return (0, value)
    return (0, (1, 0.0, str(value)))


def _ordered(rows: list[Row], order_by: tuple[Ordering, ...]) -> list[Row]:
    # Stable sorts from the last key to the first; absent values sort last either way.
    for ordering in reversed(order_by):
        present = [row for row in rows if field_value(row, ordering.field) is not None]
        absent = [row for row in rows if field_value(row, ordering.field) is None]
        present.sort(key=lambda row: _sort_key(ordering, row), reverse=ordering.descending)
        rows = present + absent
    return rows


def _project(row: Row, fields: tuple[str, ...]) -> dict[str, Any]:
    projected: dict[str, Any] = {"Id": row.get("Id"), "domain": "QBO", "sparse": True}
    for name in fields:
        top = name.split(".", 1)[0]
        if top in row:
            projected[top] = row[top]
    return projected


def evaluate(query: Query, rows: Iterable[Row]) -> QueryResult:
    """Run a parsed query over an entity's rows, given in Id order."""
    entity = QUERYABLE[query.entity.lower()]
    conditions = list(query.conditions)
    if entity.hides_inactive and not any(c.field == "Active" for c in conditions):
        conditions.append(Condition("Active", "=", (True,)))
    predicates = [compile_condition(c) for c in conditions if not _matches_every_row(c)]
    # Paging skips every row before STARTPOSITION: with nothing to test (an import's
    # `Active IN (true, false)`) that skip runs at C speed, and so does one test.
    selected: Iterator[Row]
    if not predicates:
        selected = iter(rows)
    elif len(predicates) == 1:
        selected = filter(predicates[0], rows)
    else:
        selected = (row for row in rows if all(p(row) for p in predicates))
    if query.count:
        return QueryResult(query.entity, [], 1, sum(1 for _ in selected))
    if query.order_by:
        selected = iter(_ordered(list(selected), query.order_by))
    start = query.start_position - 1
    page = itertools.islice(selected, start, start + query.max_results)
    shaped = [dict(row) if query.fields is None else _project(row, query.fields) for row in page]
    return QueryResult(query.entity, shaped, query.start_position, None)


def response(result: QueryResult) -> dict[str, Any]:
    """The `QueryResponse` object QuickBooks sends for a result."""
    if result.total_count is not None:
        return {"totalCount": result.total_count}
    if not result.rows:
        return {}
    return {
        result.entity: result.rows,
        "startPosition": result.start_position,
        "maxResults": len(result.rows),
    }
