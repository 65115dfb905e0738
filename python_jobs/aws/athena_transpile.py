"""Athena (Trino) SQL rewritten as DuckDB SQL that computes what Athena computes.

sqlglot's athena -> duckdb transpilation translates syntax: each function keeps its name or
gets its nearest DuckDB namesake, which does not always mean the same thing. Running its
output on DuckDB would then test DuckDB's semantics under Athena's spelling, and a model
whose Athena SQL computes something else than its DuckDB SQL could pass. So the Athena parse
tree is rewritten first, wherever the two engines differ on what the project's compiled SQL
uses, and only then generated as DuckDB SQL:

| Athena (Trino)                         | sqlglot alone            | rewritten as              |
| -------------------------------------- | ------------------------ | ------------------------- |
| integer / integer: the quotient        | `/`: a double on DuckDB  | athena_int_div(): `//`,   |
| truncated toward zero; / 0 an error    |                          | / 0 an error              |
| decimal / decimal or integer: exact,   | `/`: a double on DuckDB  | athena_div_half_up() on   |
| rounded half up to the larger scale,   |                          | the unscaled 128-bit      |
| decimal(min(38, p1 + s2 + max(0,       |                          | integers, cast to that    |
| s2 - s1)), max(s1, s2))                |                          | type; / 0 an error        |
| to_milliseconds(t1 - t2) (dbt-athena's | DuckDB's to_milliseconds | epoch_ms(t1) - epoch_ms   |
| datediff): the interval in ms          | makes an interval of n ms | (t2), a bigint           |
| date_diff(unit, a, b): whole units     | DuckDB date_diff: unit   | DuckDB date_sub(unit, a,  |
| elapsed                                | boundaries crossed       | b): whole units           |
| date_add(unit, n, <date>): a date      | date + interval: a       | cast(... as date)         |
|                                        | timestamp on DuckDB      |                           |
| regexp_replace(s, p, r): every match,  | 'g' added, `$1` kept     | `\\1` (and `\\\\` for a   |
| `$1` a group (Java replacement syntax) | (DuckDB reads `\\1`)     | literal backslash)        |
| trim/ltrim/rtrim(s): Java whitespace   | DuckDB trim: Unicode     | athena_trim() and the     |
| (tab, newline..., Unicode separators   | spaces, U+00A0 included, | others over Java's set    |
| but the no-break ones)                 | no tab or newline        | (JAVA_WHITESPACE)         |

Refused with NotEmulated, so that nothing passes on DuckDB's meaning by accident: a division
whose operand types are unknown, avg() of a decimal (Trino keeps the decimal type, rounded
half up; DuckDB returns a double), a cast of a double, real or timestamp to varchar (the
engines format them differently), to_milliseconds() of anything but a difference, and
regexp_replace() with a lambda. `||` with an operand typed other than text is refused with
AthenaRefuses: Trino has no implicit cast to varchar, so Athena would fail the query.

What this does not model: the corner cases of built-in functions the SQL shares by name
(date_parse leniency on malformed text, cast of padded strings, Java against RE2 regular
expressions, approx_percentile's sketch against DuckDB's), Athena's decimal overflow errors,
and float sums in another order (compared with a tolerance, athena_dry_run.py). Types come
from sqlglot's type annotation over the schema of the tables already built (catalog_schema).
"""

from __future__ import annotations

import sys
import unicodedata
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

Schema = dict[str, object]  # {catalog: {schema: {table: {column: exp.DataType}}}}
SchemaLike = Schema | MappingSchema  # what qualify and annotate_types take
_DONE = "athena_division"  # meta flag of a division already made Trino's

T = exp.DType
INTEGERS = {T.TINYINT, T.SMALLINT, T.INT, T.BIGINT}
# Trino's decimal for an integer operand of decimal arithmetic: its widest value
INTEGER_AS_DECIMAL = {T.TINYINT: 3, T.SMALLINT: 5, T.INT: 10, T.BIGINT: 19}
DECIMALS = {T.DECIMAL}
FLOATS = {T.FLOAT, T.DOUBLE}
TEXT = {T.VARCHAR, T.CHAR, T.TEXT}
FORMATTED_DIFFERENTLY = {T.FLOAT, T.DOUBLE, *exp.DataType.TEMPORAL_TYPES} - {T.DATE}
DATE_UNITS = {"DAY", "WEEK", "MONTH", "QUARTER", "YEAR"}


class NotEmulated(ValueError):
    """Athena SQL whose Athena meaning this module does not reproduce on DuckDB."""


class AthenaRefuses(ValueError):
    """SQL Athena would refuse to run (a type error Trino raises at analysis)."""


def _java_whitespace() -> list[int]:
    """The code points Trino's trim removes: Java's Character.isWhitespace (airlift's
    SliceUtf8 table), i.e. the Unicode space, line and paragraph separators but the
    non-breaking ones, and tab, line feed, vertical tab, form feed, carriage return and the
    file, group, record and unit separators."""
    controls = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F]
    separators = [
        code
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in {"Zs", "Zl", "Zp"}
        and code not in {0x00A0, 0x2007, 0x202F}
    ]
    return sorted(set(controls + separators))


JAVA_WHITESPACE = _java_whitespace()
_WHITESPACE_SQL = " || ".join(f"chr({code})" for code in JAVA_WHITESPACE)

# The DuckDB macros the rewritten SQL calls: create them once per connection (install_macros).
MACROS = {
    # Trino's integer division: truncated toward zero (DuckDB's `//` on integers), and an
    # error on division by zero (DuckDB's `//` would give null)
    "athena_int_div": ("(a, b) as case when b = 0 then error('Division by zero') else a // b end"),
    # a quotient of 128-bit integers rounded half up (away from zero), Trino's decimal
    # rounding; n and d are the operands' unscaled values, shifted to the result's scale
    "athena_div_half_up": (
        "(n, d) as case when d = 0 then error('Division by zero') "
        "else n // d + case when 2 * abs(n % d) >= abs(d) then sign(n) * sign(d) else 0 end end"
    ),
    "athena_trim": f"(s) as trim(s, {_WHITESPACE_SQL})",
    "athena_ltrim": f"(s) as ltrim(s, {_WHITESPACE_SQL})",
    "athena_rtrim": f"(s) as rtrim(s, {_WHITESPACE_SQL})",
}


def install_macros(con: Any) -> None:
    """The macros of MACROS in a DuckDB connection (temporary: they live with it)."""
    for name, body in MACROS.items():
        con.execute(f"create or replace temp macro {name}{body}")


# --- types ------------------------------------------------------------------------------


def athena_type(duckdb_type: str) -> exp.DataType:
    """The type Athena would give a column DuckDB typed `duckdb_type`, for type annotation:
    DuckDB's sum of integers is a 128-bit HUGEINT where Trino's is a bigint, and DuckDB
    names its timestamp precisions as types where Trino has timestamp(p)."""
    name = duckdb_type.upper()
    if name in {"HUGEINT", "UHUGEINT", "UBIGINT"}:
        return exp.DataType.build("BIGINT")
    if name in {"TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}:
        return exp.DataType.build("TIMESTAMP")
    return exp.DataType.build(duckdb_type, dialect="duckdb")


def catalog_schema(con: Any, catalog: str) -> Schema:
    """{catalog: {schema: {table: {column: type}}}} of every table and view of a DuckDB
    catalog, typed as Athena would type them (athena_type)."""
    rows = con.execute(
        "select table_schema, table_name, column_name, data_type "
        "from information_schema.columns where table_catalog = ? "
        "order by table_schema, table_name, ordinal_position",
        [catalog],
    ).fetchall()
    tables: dict[str, dict[str, dict[str, exp.DataType]]] = {}
    for schema, table, column, data_type in rows:
        tables.setdefault(schema, {}).setdefault(table, {})[column] = athena_type(data_type)
    return {catalog: tables}


def _kind(node: exp.Expr) -> exp.DType | None:
    data_type = node.type
    if data_type is None or data_type.this in {T.UNKNOWN, T.NULL}:
        return None
    return data_type.this


def _scale(data_type: exp.DataType) -> tuple[int, int]:
    """(precision, scale) of a decimal or integer type, as Trino's decimal arithmetic sees it."""
    if data_type.this in INTEGER_AS_DECIMAL:
        return INTEGER_AS_DECIMAL[data_type.this], 0
    params = [int(p.name) for p in data_type.expressions if p.name.isdigit()]
    precision = params[0] if params else 38
    return precision, params[1] if len(params) > 1 else 0


# --- rewrites that need no types ------------------------------------------------------------


def _to_milliseconds(node: exp.Anonymous) -> exp.Expression:
    (argument,) = node.expressions
    difference = argument.unnest()
    if not isinstance(difference, exp.Sub):
        raise NotEmulated(f"to_milliseconds() of something else than a difference: {node.sql()}")

    def epoch_ms(value: exp.Expression) -> exp.Expression:
        return exp.Anonymous(
            this="epoch_ms", expressions=[exp.cast(value.copy(), exp.DataType.build("TIMESTAMP"))]
        )

    return exp.cast(
        exp.Sub(this=epoch_ms(difference.this), expression=epoch_ms(difference.expression)),
        exp.DataType.build("BIGINT"),
    )


def _date_diff(node: exp.DateDiff) -> exp.Expression:
    unit = (node.unit.name if node.unit else "DAY").lower()
    whole_units = exp.Anonymous(
        this="date_sub",
        expressions=[exp.Literal.string(unit), node.expression.copy(), node.this.copy()],
    )
    return exp.cast(whole_units, exp.DataType.build("BIGINT"))


def java_replacement_to_re2(replacement: str) -> str:
    """Java's regex replacement syntax ($1, ${name}, \\x for a literal x) as RE2's (\\1,
    \\\\ for a backslash), what DuckDB's regexp_replace reads."""
    out = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\" and i + 1 < len(replacement):
            literal = replacement[i + 1]
            out.append("\\\\" if literal == "\\" else literal)
            i += 2
        elif char == "$" and i + 1 < len(replacement) and replacement[i + 1].isdigit():
            out.append("\\" + replacement[i + 1])
            i += 2
        elif char == "$":
            raise NotEmulated(f"regexp_replace replacement {replacement!r}: named groups")
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _regexp_replace(node: exp.RegexpReplace) -> exp.Expression:
    replacement = node.args.get("replacement")
    if replacement is None:
        replacement = exp.Literal.string("")  # Trino's two-argument form removes the matches
    if not replacement.is_string:
        raise NotEmulated(f"regexp_replace() with a lambda or a computed replacement: {node.sql()}")
    if any(node.args.get(arg) for arg in ("position", "occurrence", "modifiers")):
        raise NotEmulated(f"regexp_replace() with more arguments: {node.sql()}")
    return exp.Anonymous(
        this="regexp_replace",
        expressions=[
            node.this.copy(),
            node.expression.copy(),
            exp.Literal.string(java_replacement_to_re2(replacement.name)),
            exp.Literal.string("g"),  # every match, as Trino replaces
        ],
    )


def _trim(node: exp.Trim) -> exp.Expression:
    if node.expression is not None:
        return node  # explicit characters: the same on both engines
    position = (node.args.get("position") or "BOTH").upper()
    macro = {"BOTH": "athena_trim", "LEADING": "athena_ltrim", "TRAILING": "athena_rtrim"}
    return exp.Anonymous(this=macro[position], expressions=[node.this.copy()])


def _untyped_rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and node.name.lower() == "to_milliseconds":
        return _to_milliseconds(node)
    if isinstance(node, exp.DateDiff):
        return _date_diff(node)
    if isinstance(node, exp.RegexpReplace):
        return _regexp_replace(node)
    if isinstance(node, exp.Trim):
        return _trim(node)
    return node


# --- rewrites and refusals that need types ----------------------------------------------


def _division(node: exp.Div) -> exp.Expression:
    left, right = _kind(node.this), _kind(node.expression)
    if left in FLOATS or right in FLOATS:
        node.set("typed", False)  # a double on both engines: DuckDB's `/`
        return node
    if left in INTEGERS and right in INTEGERS:
        widest = exp.DataType.build(
            "BIGINT" if T.BIGINT in {left, right} else "INTEGER"
        )  # Trino: the wider operand type
        quotient = exp.Anonymous(
            this="athena_int_div", expressions=[node.this.copy(), node.expression.copy()]
        )
        return exp.cast(quotient, widest)
    numeric = INTEGERS | DECIMALS
    if left in numeric and right in numeric:
        return _decimal_division(node)
    raise NotEmulated(
        f"division of {node.this.type and node.this.type.sql()} by "
        f"{node.expression.type and node.expression.type.sql()}: {node.sql(dialect='athena')}"
    )


def _decimal_division(node: exp.Div) -> exp.Expression:
    """Trino's decimal quotient: exact, rounded half up to the larger operand scale, typed
    decimal(min(38, p1 + s2 + max(0, s2 - s1)), max(s1, s2)); computed on the operands'
    unscaled 128-bit integers so that no double is involved."""
    assert node.this.type is not None and node.expression.type is not None
    p1, s1 = _scale(node.this.type)
    _, s2 = _scale(node.expression.type)
    scale = max(s1, s2)
    precision = min(38, p1 + s2 + max(0, s2 - s1))

    def unscaled(value: exp.Expression, value_scale: int, shift: int) -> exp.Expression:
        # exact: a decimal(38, s) times 10^s is an integer, cast to hugeint without rounding
        wide = exp.cast(value.copy(), exp.DataType.build(f"DECIMAL(38, {value_scale})"))
        integer = exp.cast(
            exp.Mul(this=wide, expression=exp.Literal.number(10**value_scale)),
            exp.DataType.build("HUGEINT", dialect="duckdb"),
        )
        return exp.Mul(this=integer, expression=exp.Literal.number(10**shift))

    quotient = exp.Anonymous(
        this="athena_div_half_up",
        expressions=[
            unscaled(node.this, s1, scale - s1 + s2),
            unscaled(node.expression, s2, 0),
        ],
    )
    # the unscaled quotient back to a decimal of `scale` digits: '6945e-2' is read exactly
    text = exp.DPipe(
        this=exp.cast(quotient, exp.DataType.build("VARCHAR")),
        expression=exp.Literal.string(f"e-{scale}"),
    )
    return exp.cast(text, exp.DataType.build(f"DECIMAL({precision}, {scale})"))


def _typed_check(node: exp.Expr) -> None:
    if isinstance(node, exp.Avg) and _kind(node.this) in DECIMALS:
        raise NotEmulated(
            f"avg() of a decimal (Trino: a decimal rounded half up): {node.sql(dialect='athena')}"
        )
    if isinstance(node, exp.Cast) and node.to.this in TEXT:
        source = _kind(node.this)
        if source is not None and source in FORMATTED_DIFFERENTLY:
            raise NotEmulated(
                f"cast of a {source.value.lower()} to varchar (formatted differently): "
                f"{node.sql(dialect='athena')}"
            )
    if isinstance(node, exp.DPipe):
        for side in (node.this, node.expression):
            kind = _kind(side)
            if kind is not None and kind not in TEXT:
                raise AthenaRefuses(
                    f"`||` with a {kind.value.lower()} operand (Trino has no implicit cast to "
                    f"varchar): {node.sql(dialect='athena')}"
                )


def _date_add(node: exp.DateAdd) -> exp.Expression:
    unit = (node.unit.name if node.unit else "DAY").upper()
    if _kind(node.this) == T.DATE and unit in DATE_UNITS:
        return exp.cast(node.copy(), exp.DataType.build("DATE"))
    return node


def _annotate(tree: exp.Expression, schema: SchemaLike) -> exp.Expression:
    return annotate_types(tree, schema=schema, dialect="athena")


def _rewrite_date_add(node: exp.Expression) -> exp.Expression:
    return _date_add(node) if isinstance(node, exp.DateAdd) else node


def to_duckdb(sql: str, schema: SchemaLike) -> str:
    """DuckDB SQL computing what the Athena `sql` (one statement) computes over tables typed
    as `schema` says (catalog_schema). Raises NotEmulated or AthenaRefuses (above)."""
    tree = sqlglot.parse_one(sql, read="athena")
    tree = tree.transform(_untyped_rewrite, copy=False)
    tree = qualify(tree, schema=schema, dialect="athena", validate_qualify_columns=False)
    tree = _annotate(tree, schema)
    for node in tree.walk():
        _typed_check(node)
    # divisions innermost first, re-annotating between rounds: an outer division's operand
    # type is then the rewritten inner one's (a decimal of Trino's scale, an integer quotient)
    while True:
        pending = [
            node
            for node in tree.find_all(exp.Div)
            if _DONE not in node.meta
            and all(_DONE in inner.meta for inner in node.find_all(exp.Div) if inner is not node)
        ]
        if not pending:
            break
        for node in pending:
            replacement = _division(node)
            for division in replacement.find_all(exp.Div):
                division.meta[_DONE] = True
            replacement.meta[_DONE] = True
            if replacement is not node:
                node.replace(replacement)
        tree = _annotate(tree, schema)
    tree = tree.transform(_rewrite_date_add, copy=False)
    return tree.sql(dialect="duckdb")
