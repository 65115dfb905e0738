"""What makes compiled SQL Athena's rather than DuckDB's, decided on the SQL text alone.

- duckdb_only_constructs: DuckDB functions and syntax Athena (Trino) lacks, found by token so
  that string literals and comments never match;
- empty_typed_literals: `date ''`, a value that rendered empty;
- millisecond_timestamps: output columns that Athena types timestamp(3), followed through
  CTEs, stars and set operations; an Iceberg table refuses them (it stores timestamp(6)).

Used by athena_check.py on every compiled node; kept apart so each rule is testable on a
line of SQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

# DuckDB functions Athena (Trino) does not have, with what to use there.
DUCKDB_ONLY_FUNCTIONS = {
    "read_parquet": "a Glue table (source())",
    "read_json": "a Glue table (source())",
    "read_json_auto": "a Glue table (source())",
    "read_csv": "a Glue table (source())",
    "read_csv_auto": "a Glue table (source())",
    "parquet_scan": "a Glue table (source())",
    "glob": "a Glue table (source())",
    "strftime": "date_format",
    "strptime": "date_parse",
    "try_strptime": "try(date_parse(...))",
    "epoch_ms": "to_unixtime / date_diff('millisecond', ...)",
    "epoch_us": "to_unixtime",
    "epoch": "to_unixtime",
    "isodow": "day_of_week",
    "dayofweek": "day_of_week",
    "struct_pack": "cast(row(...) as row(...))",
    "struct_extract": "row field access",
    "string_split": "split",
    "str_split": "split",
    "string_agg": "array_join(array_agg(...))",
    "regexp_matches": "regexp_like",
    "regexp_full_match": "regexp_like with ^...$",
    "median": "approx_percentile(x, 0.5)",
    "datediff": "date_diff",
    "date_part": "extract / year() / month()",
    "make_date": "date(...) from a string",
    "make_timestamp": "from_unixtime / date_parse",
    "arg_max": "max_by",
    "arg_min": "min_by",
    "ifnull": "coalesce",
    "strlen": "length",
    "array_length": "cardinality",
    "generate_series": "sequence",
}
DUCKDB_ONLY_PREFIXES = {"list_": "array functions (transform, reduce, ...)"}


def duckdb_only_constructs(sql: str) -> list[str]:
    """DuckDB-only syntax and functions in `sql`, by token: string literals and comments
    never match, so `'%Y-%m-%d'` or a comment naming strftime is fine."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    tokens = Dialect.get_or_raise("athena").tokenize(sql)
    found: list[str] = []
    for i, token in enumerate(tokens):
        text = token.text.lower()
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        calls = following is not None and following.token_type == TokenType.L_PAREN
        if token.token_type == TokenType.DCOLON:
            found.append("`::` cast (use cast(x as type))")
        elif token.token_type == TokenType.ILIKE:
            found.append("ILIKE (use lower(x) like ...)")
        elif (
            token.token_type == TokenType.SLASH
            and following is not None
            and following.token_type == TokenType.SLASH
            and following.start == token.end + 1
        ):
            found.append("`//` integer division (Athena's `/` of integers truncates)")
        elif text == "hugeint":  # a type token (INT128) in the athena tokenizer
            found.append("HUGEINT (Athena: bigint or decimal(38, 0))")
        elif token.token_type == TokenType.VAR and text == "qualify":
            found.append("QUALIFY (filter a row_number() in an outer query)")
        elif (
            token.token_type == TokenType.STAR
            and following
            and following.text.lower()
            in {
                "exclude",
                "replace",
            }
        ):
            found.append(f"SELECT * {following.text.upper()} (list the columns)")
        elif token.token_type == TokenType.INTERVAL and following is not None:
            if following.token_type == TokenType.NUMBER:
                number = following.text
                found.append(f"interval {number} unquoted (Athena: interval '{number}' day)")
        elif token.token_type == TokenType.CURRENT_DATE and following is not None:
            after = tokens[i + 2] if i + 2 < len(tokens) else None
            if following.token_type in {TokenType.DASH, TokenType.PLUS} and (
                after is not None and after.token_type == TokenType.NUMBER
            ):
                found.append("date +/- integer (use date_add('day', n, d))")
        elif calls and text in DUCKDB_ONLY_FUNCTIONS:
            found.append(f"{text}() (Athena: {DUCKDB_ONLY_FUNCTIONS[text]})")
        elif calls and any(text.startswith(prefix) for prefix in DUCKDB_ONLY_PREFIXES):
            prefix = next(p for p in DUCKDB_ONLY_PREFIXES if text.startswith(p))
            found.append(f"{text}() (Athena: {DUCKDB_ONLY_PREFIXES[prefix]})")
        elif calls and text == "regexp_replace" and _argument_count(tokens, i + 1) > 3:
            found.append("regexp_replace() with a 4th (flags) argument: Athena replaces all")
    return found


def empty_typed_literals(sql: str) -> list[str]:
    """`date ''`, `timestamp ''`: a typed literal with no value, what a Jinja value that
    rendered empty leaves behind (a compile-time answer lacking the column a model reads).
    sqlglot parses it; Athena refuses it."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    tokens = Dialect.get_or_raise("athena").tokenize(sql)
    return [
        f"{token.text.lower()} ''"
        for token, following in itertools.pairwise(tokens)
        if token.token_type in {TokenType.DATE, TokenType.TIMESTAMP}
        and following.token_type == TokenType.STRING
        and not following.text.strip()
    ]


def _argument_count(tokens: list[Any], open_index: int) -> int:
    from sqlglot.tokens import TokenType

    depth, commas = 0, 0
    for token in tokens[open_index:]:
        if token.token_type in {TokenType.L_PAREN, TokenType.L_BRACKET}:
            depth += 1
        elif token.token_type in {TokenType.R_PAREN, TokenType.R_BRACKET}:
            depth -= 1
            if depth == 0:
                return commas + 1
        elif token.token_type == TokenType.COMMA and depth == 1:
            commas += 1
    return commas + 1


def millisecond_timestamps(sql: str) -> list[str]:
    """Output columns that are timestamp(3) on Athena: produced by date_parse(), a cast to
    plain `timestamp` or now()/current_timestamp, followed from the final select back through
    CTEs, subqueries, stars, set operations (by position), aliases, try, coalesce and case
    branches; a cast to any other type ends the path. In an Iceberg table such a column fails
    CREATE TABLE AS, and cast_table_timestamp() makes it timestamp(6). A timestamp used inside
    a computation (date_diff(..., cast(x as timestamp))) or in a CTE column that no output
    column comes from is fine."""
    import sqlglot
    from sqlglot.optimizer.scope import build_scope

    found: list[str] = []
    for statement in sqlglot.parse(sql, read="athena"):
        root = build_scope(statement) if statement is not None else None
        if root is None:
            continue
        lineage = _Lineage()
        for _name, producers in lineage.columns(root):
            for scope, projection in producers:
                found.extend(
                    node.sql(dialect="athena")[:120]
                    for node in lineage.millisecond(scope, projection)
                )
    return list(dict.fromkeys(found))


class _Lineage:
    """Column lineage through one statement's scopes, memoized (ml_features has dozens of
    CTEs and stars: without memos the walk is exponential)."""

    def __init__(self) -> None:
        self._columns: dict[int, list[tuple[str, list[tuple[Any, Any]]]]] = {}
        self._millisecond: dict[int, list[Any]] = {}

    def columns(self, scope: Any) -> list[tuple[str, list[tuple[Any, Any]]]]:
        """Output columns of a scope: name and every (scope, projection) producing it."""
        from sqlglot import exp

        key = id(scope)
        if key in self._columns:
            return self._columns[key]
        self._columns[key] = []  # a cycle (never expected) ends here
        columns: list[tuple[str, list[tuple[Any, Any]]]] = []
        if scope.set_operation_scopes:
            branches = [self.columns(branch) for branch in scope.set_operation_scopes]
            for position, (name, producers) in enumerate(branches[0]):
                merged = list(producers)
                for other in branches[1:]:
                    if position < len(other):
                        merged.extend(other[position][1])
                columns.append((name, merged))
        elif isinstance(scope.expression, exp.Select):
            for projection in scope.expression.expressions:
                if _is_star(projection):
                    for source in _star_sources(scope, projection):
                        columns.extend(self.columns(source))
                else:
                    columns.append((projection.alias_or_name, [(scope, projection)]))
        self._columns[key] = columns
        return columns

    def millisecond(self, scope: Any, projection: Any) -> list[Any]:
        """timestamp(3) expressions the projection's value comes from."""
        from sqlglot import exp
        from sqlglot.optimizer.scope import Scope

        key = id(projection)
        if key in self._millisecond:
            return self._millisecond[key]
        self._millisecond[key] = []
        found: list[Any] = []
        for node in _result_path(projection):
            if _is_millisecond_timestamp(node):
                found.append(node)
            elif isinstance(node, exp.Column):
                for source in _selected(scope, node.table):
                    if not isinstance(source, Scope):
                        continue
                    for name, producers in self.columns(source):
                        if name == node.name:
                            for inner_scope, inner in producers:
                                found.extend(self.millisecond(inner_scope, inner))
        self._millisecond[key] = found
        return found


def _result_path(node: Any) -> Iterator[Any]:
    """The expressions whose value becomes `node`'s value unchanged in type."""
    from sqlglot import exp

    yield node
    if isinstance(node, exp.Alias | exp.Paren | exp.Try):
        yield from _result_path(node.this)
    elif isinstance(node, exp.Coalesce):
        for part in (node.this, *node.expressions):
            yield from _result_path(part)
    elif isinstance(node, exp.Case):
        for branch in node.args.get("ifs") or []:
            yield from _result_path(branch.args["true"])
        if node.args.get("default") is not None:
            yield from _result_path(node.args["default"])


def _is_millisecond_timestamp(node: Any) -> bool:
    from sqlglot import exp

    if isinstance(node, exp.StrToTime | exp.CurrentTimestamp):
        return True
    return isinstance(node, exp.Cast | exp.TryCast) and (
        node.to.is_type(exp.DataType.Type.TIMESTAMP) and not node.to.expressions
    )


def _is_star(projection: Any) -> bool:
    from sqlglot import exp

    return isinstance(projection, exp.Star) or (
        isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
    )


def _star_sources(scope: Any, projection: Any) -> list[Any]:
    """The scopes a `*` or `alias.*` projection expands from (tables end the walk)."""
    from sqlglot import exp
    from sqlglot.optimizer.scope import Scope

    table = projection.table if isinstance(projection, exp.Column) else ""
    return [source for source in _selected(scope, table) if isinstance(source, Scope)]


def _selected(scope: Any, table: str) -> list[Any]:
    """The sources a column of `table` ('' = unqualified) can come from: those in the
    scope's FROM and JOINs, not every CTE in reach."""
    selected = {name: source for name, (_node, source) in scope.selected_sources.items()}
    if table:
        return [selected[table]] if table in selected else []
    return list(selected.values())
