"""The SQL guard: every statement the assistant runs — a model's, an intent's, an analyst's —
passes here first, and only what comes out is executed.

The guard parses with sqlglot for the active dialect and works on the tree, never on the text:
a keyword hidden in a string literal or a comment cannot fool it, and anything it cannot parse
is refused. What it accepts is one read-only query over the curated marts:

- exactly one statement, a SELECT or a set operation (UNION / INTERSECT / EXCEPT) of SELECTs;
- no DDL, DML, COPY, ATTACH, PRAGMA, SET, INSTALL/LOAD, EXPLAIN, SHOW, ... anywhere in the tree;
- relations only from the allow-list (the curated models, named `name` or `<schema>.name`;
  CTE names in scope excepted), rewritten fully qualified so the engine's search path does
  not matter; no table functions, file paths, URLs, system catalogs or Iceberg metadata tables;
- no PII column by name, no `*` over a relation holding one, no whole-row reference to it;
- no functions that read files, settings, secrets or variables, sleep, or generate rows;
- every join has an equality between the two sides (no cross, comma or natural joins), no
  recursive CTE, no long string literal;
- the outer LIMIT injected, or capped at `max_rows`.

The SQL it returns is regenerated from the checked tree without comments, then parsed and
checked again: what runs is exactly what was checked. The engine is read-only as well
(`warehouse.py`); the guard is the first line, not the only one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

DIALECTS = ("duckdb", "athena")
DEFAULT_MAX_ROWS = 100
MAX_ROWS_CEILING = 10_000
MAX_SQL_CHARS = 20_000
MAX_LITERAL_CHARS = 200
# The layer's name in dbt_project.yml: accepted as a qualifier on every engine and rewritten
# to the warehouse's own curated schema (`banklake_curated` on Athena), so one SQL text
# (the intents', an analyst's) runs on both.
LOGICAL_SCHEMA = "curated"

# Column names that are PII whatever relation they are found in (the curated marts never hold
# them, the processed layer does): refused even if someone adds such a column to a mart.
ALWAYS_PII_COLUMNS = frozenset(
    {"cpf", "cpf_digits", "cpf_hash", "full_name", "name_masked", "counterparty_key", "email"}
)

# Statement kinds that have no place inside a read-only query, wherever they appear.
_FORBIDDEN_NODES: tuple[type[exp.Expr], ...] = (
    exp.DDL,
    exp.DML,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Pragma,
    exp.Set,
    exp.SetItem,
    exp.Attach,
    exp.Detach,
    exp.Use,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Install,
    exp.Summarize,
    exp.Describe,
    exp.Show,
    exp.Into,
    exp.LoadData,
    exp.Cache,
    exp.Uncache,
    exp.Refresh,
    exp.Analyze,
    exp.Grant,
    exp.Revoke,
    exp.TruncateTable,
    exp.Comment,
    exp.Kill,
    exp.Declare,
    exp.Export,
    exp.Lock,
    exp.Returning,
    exp.OnConflict,
    exp.Execute,
)

# Functions sqlglot knows by class: files, row generators, explode/unnest, regex column lists.
_FILE_FUNCTIONS: tuple[type[exp.Expr], ...] = (exp.ReadCSV, exp.ReadParquet)
_ROW_FUNCTIONS: tuple[type[exp.Expr], ...] = (
    exp.GenerateSeries,
    exp.Unnest,
    exp.Explode,
    exp.Inline,
    exp.Repeat,
    exp.Columns,
)

# Functions sqlglot does not know (exp.Anonymous), by name.
_FILE_FUNCTION_PREFIXES = ("read_", "parquet_", "sniff_")
_FILE_FUNCTION_NAMES = frozenset({"glob", "read_text", "read_blob", "parquet_scan", "arrow_scan"})
_CATALOG_FUNCTION_PREFIXES = ("duckdb_", "pragma_", "pg_")
_DENIED_FUNCTION_NAMES = frozenset(
    {
        # settings, secrets, variables, environment
        "current_setting",
        "getenv",
        "getvariable",
        "which_secret",
        "current_query",
        # side effects and time
        "sleep_ms",
        "sleep",
        "setseed",
        "nextval",
        "currval",
        "checkpoint",
        "force_checkpoint",
        "enable_logging",
        "disable_logging",
        "enable_profiling",
        "disable_profiling",
        "truncate_duckdb_logs",
        # SQL inside SQL, row generators and table functions
        "query",
        "query_table",
        "json_execute_serialized_sql",
        "range",
        "generate_series",
        "sequence",
        "repeat",
        "repeat_row",
        "unnest",
        "summary",
        "seq_scan",
        "pandas_scan",
        "python_map_function",
        "table",
        "columns",
    }
)

_SYSTEM_SCHEMAS = frozenset(
    {"information_schema", "pg_catalog", "system", "sys", "temp", "main", "memory", "system_jdbc"}
)
_SYSTEM_TABLES = frozenset(
    {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema", "tables"}
)


class Refusal(ValueError):
    """The assistant refuses: `rule` is a stable code (tests and logs use it), the message
    says what was refused and why, in words an analyst can act on. The CLI exits 2."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"refused ({rule}): {reason}")
        self.rule = rule
        self.reason = reason


class SQLRefused(Refusal):
    """The guard refused a statement."""


@dataclass(frozen=True)
class AllowList:
    """What the guard lets a query read: the curated relations of one warehouse.

    `schema` is the curated schema as the engine names it (`curated` in DuckDB,
    `<prefix>_curated` on Athena); `pii_columns` maps each relation to the columns it holds
    that must never be read (schema_context.py decides which, from the dbt manifest)."""

    schema: str
    relations: frozenset[str]
    pii_columns: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schema", self.schema.lower())
        object.__setattr__(self, "relations", frozenset(r.lower() for r in self.relations))
        object.__setattr__(
            self,
            "pii_columns",
            {r.lower(): frozenset(c.lower() for c in cs) for r, cs in self.pii_columns.items()},
        )

    @property
    def denied_columns(self) -> frozenset[str]:
        return ALWAYS_PII_COLUMNS.union(*self.pii_columns.values())


@dataclass(frozen=True)
class GuardedSQL:
    """A statement that passed: the SQL to execute (regenerated, fully qualified, limited),
    the curated relations it reads, and what happened to its LIMIT."""

    sql: str
    dialect: str
    relations: tuple[str, ...]
    limit: int
    limit_action: str  # "injected", "capped" or "kept"


def guard_sql(
    sql: str, *, dialect: str, allow: AllowList, max_rows: int = DEFAULT_MAX_ROWS
) -> GuardedSQL:
    """Checks `sql` and returns what may run, or raises SQLRefused naming the first problem."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    if not 1 <= max_rows <= MAX_ROWS_CEILING:
        raise ValueError(f"max_rows must be between 1 and {MAX_ROWS_CEILING}, got {max_rows}")
    tree = _parse_one(sql, dialect)
    relations, limit, action = _check_and_rewrite(tree, dialect, allow, max_rows)
    final = _generate(tree, dialect)
    # What runs is what was checked: the regenerated text must pass again, unchanged.
    again = _parse_one(final, dialect)
    _check_and_rewrite(again, dialect, allow, max_rows)
    if _generate(again, dialect) != final:
        raise SQLRefused("unstable", "the statement does not survive a parse/print round trip")
    return GuardedSQL(final, dialect, tuple(sorted(relations)), limit, action)


def _generate(tree: exp.Expr, dialect: str) -> str:
    """The tree as SQL, comments dropped (nothing can hide in them), and refused where sqlglot
    cannot write a construct faithfully in the dialect rather than approximate it."""
    try:
        return tree.sql(
            dialect=dialect, comments=False, pretty=True, unsupported_level=ErrorLevel.RAISE
        )
    except SqlglotError as error:
        raise SQLRefused(
            "parse_error", f"sqlglot cannot write this back as {dialect} SQL: {error}"
        ) from None


# --- parsing -----------------------------------------------------------------------------


def _parse_one(sql: str, dialect: str) -> exp.Expr:
    if not sql or not sql.strip():
        raise SQLRefused("empty", "there is no statement")
    if len(sql) > MAX_SQL_CHARS:
        raise SQLRefused("too_long", f"the statement is over {MAX_SQL_CHARS:,} characters")
    sqlglot_logger = logging.getLogger("sqlglot")
    level = sqlglot_logger.level
    sqlglot_logger.setLevel(logging.ERROR)  # "falling back to Command" is our refusal to make
    try:
        statements = sqlglot.parse(sql, read=dialect, error_level=ErrorLevel.RAISE)
    except (SqlglotError, RecursionError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SQLRefused("parse_error", f"not valid {dialect} SQL: {first_line}") from None
    except Exception as error:  # a sqlglot bug is still a refusal, never a pass
        raise SQLRefused("parse_error", f"could not parse: {type(error).__name__}") from None
    finally:
        sqlglot_logger.setLevel(level)
    trees = [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]
    if not trees:
        raise SQLRefused("empty", "there is no statement")
    if len(trees) > 1:
        raise SQLRefused(
            "multiple_statements", f"exactly one statement is allowed, got {len(trees)}"
        )
    return trees[0]


# --- checks ------------------------------------------------------------------------------


def _check_and_rewrite(
    tree: exp.Expr, dialect: str, allow: AllowList, max_rows: int
) -> tuple[set[str], int, str]:
    query = tree
    while isinstance(query, exp.Subquery):
        query = query.this
    if not isinstance(query, (exp.Select, exp.SetOperation)):
        kind = _statement_kind(tree)
        raise SQLRefused("not_a_query", f"only SELECT queries are allowed, not {kind}")
    for node in tree.walk():
        _check_node(node, allow)
    relations = _check_relations(tree, dialect, allow)
    if not relations:
        raise SQLRefused(
            "no_relation", "the query reads no curated relation, so there is nothing to answer"
        )
    _check_stars_and_rows(tree, allow)
    limit, action = _apply_limit(tree, max_rows)
    return relations, limit, action


def _statement_kind(tree: exp.Expr) -> str:
    if isinstance(tree, exp.Command):
        return f"a {str(tree.this).upper()} command"
    if isinstance(tree, (exp.Column, exp.Identifier, exp.Literal)):
        return f"the bare word {tree.sql()!r}"
    return f"a {tree.key.upper()} statement"


def _check_node(node: exp.Expr, allow: AllowList) -> None:
    if isinstance(node, _FORBIDDEN_NODES):
        what = _statement_kind(node)
        if isinstance(node, exp.Into):
            what = "SELECT ... INTO (it creates a table)"
        raise SQLRefused("forbidden_statement", f"{what} is not allowed in a read-only query")
    if isinstance(node, exp.With) and node.args.get("recursive"):
        raise SQLRefused("recursive_cte", "WITH RECURSIVE can run without end; write it without")
    if isinstance(node, exp.Func):
        _check_function(node)
    if isinstance(node, exp.Column):
        name = node.name.lower()
        if name.startswith("$"):
            raise SQLRefused(
                "hidden_column", f"hidden column {node.name!r} exposes storage paths and files"
            )
        if name in allow.denied_columns:
            raise SQLRefused(
                "pii_column", f"column {node.name!r} holds personal data (PII) and is not offered"
            )
    if isinstance(node, exp.Literal) and node.is_string and len(node.this) > MAX_LITERAL_CHARS:
        raise SQLRefused(
            "long_literal", f"a string literal over {MAX_LITERAL_CHARS} characters is not a filter"
        )
    if isinstance(node, exp.Limit):
        options = node.args.get("limit_options")
        if options is not None and (options.args.get("percent") or options.args.get("with_ties")):
            raise SQLRefused("limit_not_literal", "LIMIT ... PERCENT / WITH TIES is not allowed")
    if isinstance(node, exp.Join):
        _check_join(node)


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return node.sql_name().lower()


def _check_function(node: exp.Func) -> None:
    name = _function_name(node)
    if isinstance(node, _FILE_FUNCTIONS) or (
        name in _FILE_FUNCTION_NAMES or name.startswith(_FILE_FUNCTION_PREFIXES)
    ):
        raise SQLRefused("file_access", f"function {name}() reads files or URLs")
    if name.startswith(_CATALOG_FUNCTION_PREFIXES):
        raise SQLRefused("system_catalog", f"function {name}() reads the engine's catalog")
    if isinstance(node, _ROW_FUNCTIONS) or name in _DENIED_FUNCTION_NAMES:
        raise SQLRefused(
            "forbidden_function",
            f"function {name}() is not allowed (settings, side effects, SQL in strings, "
            "or generated rows)",
        )


def _conjuncts(condition: exp.Expr) -> Iterator[exp.Expr]:
    if isinstance(condition, exp.Paren):
        yield from _conjuncts(condition.this)
    elif isinstance(condition, exp.And):
        yield from _conjuncts(condition.this)
        yield from _conjuncts(condition.expression)
    else:
        yield condition


def _is_key_equality(condition: exp.Expr) -> bool:
    """An equality whose two sides read columns of different relations (`a.x = b.y`), or
    two different unqualified columns: what makes a join a lookup rather than a product."""
    if not isinstance(condition, exp.EQ):
        return False
    left = list(condition.this.find_all(exp.Column))
    right = list(condition.expression.find_all(exp.Column))
    if not left or not right:
        return False
    left_tables = {c.table.lower() for c in left}
    right_tables = {c.table.lower() for c in right}
    if left_tables == {""} and right_tables == {""}:
        return {c.name.lower() for c in left}.isdisjoint(c.name.lower() for c in right)
    return left_tables.isdisjoint(right_tables)


def _check_join(join: exp.Join) -> None:
    kind = (join.args.get("kind") or "").upper()
    method = (join.args.get("method") or "").upper()
    if kind == "CROSS" or method in {"NATURAL", "POSITIONAL"}:
        raise SQLRefused(
            "unbounded_join",
            f"{(method or kind)} JOIN multiplies whole relations; join on a key with ON a.x = b.x",
        )
    if join.args.get("using"):
        return
    condition = join.args.get("on")
    if condition is None:
        raise SQLRefused(
            "unbounded_join",
            "a join without a condition (comma join) is a cross product; use JOIN ... ON a.x = b.x",
        )
    if not any(_is_key_equality(c) for c in _conjuncts(condition)):
        raise SQLRefused(
            "unbounded_join",
            "every join needs an equality between columns of both sides (ON a.x = b.x)",
        )


# --- relations ---------------------------------------------------------------------------


def _visible_ctes(table: exp.Table) -> set[str]:
    """CTE names a table reference can see: those of every enclosing WITH, where a reference
    inside the body of CTE k sees only the CTEs before k (no recursion, refused anyway)."""
    names: set[str] = set()
    child: exp.Expr = table
    parent = table.parent
    while parent is not None:
        if isinstance(parent, exp.CTE) and isinstance(parent.parent, exp.With):
            ctes = list(parent.parent.expressions)
            position = next(i for i, cte in enumerate(ctes) if cte is parent)
            names.update(cte.alias_or_name.lower() for cte in ctes[:position])
            child = parent.parent.parent or parent.parent  # the query owning the WITH
            parent = child.parent
            continue
        with_ = parent.args.get("with_") if isinstance(parent, exp.Expr) else None
        if isinstance(with_, exp.With) and child is not with_:
            names.update(cte.alias_or_name.lower() for cte in with_.expressions)
        child = parent
        parent = parent.parent
    return names


def _looks_like_path(name: str) -> bool:
    lowered = name.lower()
    return (
        "/" in name
        or "\\" in name
        or "://" in name
        or "~" in name
        or lowered.endswith((".csv", ".parquet", ".json", ".jsonl", ".gz", ".txt", ".db"))
    )


def _check_relations(tree: exp.Expr, dialect: str, allow: AllowList) -> set[str]:
    read: set[str] = set()
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            function = table.this
            name = _function_name(function) if isinstance(function, exp.Func) else "?"
            if isinstance(function, exp.Func):
                _check_function(function)
            raise SQLRefused("table_function", f"table function {name}() is not allowed")
        name = table.name.lower()
        db = table.db.lower()
        catalog = table.catalog.lower()
        if _looks_like_path(table.name):
            raise SQLRefused("file_access", f"{table.name!r} is a file path or URL, not a mart")
        if not db and not catalog and name in _visible_ctes(table):
            continue
        shown = ".".join(p for p in (catalog, db, name) if p)
        if (
            db in _SYSTEM_SCHEMAS
            or catalog in _SYSTEM_SCHEMAS
            or name in _SYSTEM_SCHEMAS
            or (not db and name in _SYSTEM_TABLES)
            or name.startswith(_CATALOG_FUNCTION_PREFIXES)
        ):
            raise SQLRefused("system_catalog", f"{shown} is a system catalog, not a curated mart")
        if "$" in name:
            raise SQLRefused("system_catalog", f"{shown} is a metadata table, not a curated mart")
        if catalog:
            raise SQLRefused(
                "relation_not_allowed",
                f"{shown}: name curated relations as {allow.schema}.<name>, "
                f"{LOGICAL_SCHEMA}.<name> or <name>",
            )
        if (db and db not in {allow.schema, LOGICAL_SCHEMA}) or name not in allow.relations:
            raise SQLRefused(
                "relation_not_allowed",
                f"{shown} is not a curated mart the assistant may read "
                f"(allowed: {', '.join(sorted(allow.relations)) or 'none'})",
            )
        table.set("db", exp.to_identifier(allow.schema))
        table.set("catalog", None)
        read.add(name)
    return read


def _direct_sources(select: exp.Select) -> list[exp.Expr]:
    sources: list[exp.Expr] = []
    from_ = select.args.get("from_")
    if from_ is not None:
        sources.append(from_.this)
    sources.extend(join.this for join in select.args.get("joins") or [])
    return sources


def _pii_relation(source: exp.Expr, allow: AllowList) -> str | None:
    if isinstance(source, exp.Table) and source.db.lower() == allow.schema:
        name = source.name.lower()
        if allow.pii_columns.get(name):
            return name
    return None


def _check_stars_and_rows(tree: exp.Expr, allow: AllowList) -> None:
    """`*` or a bare alias (DuckDB reads `select t from dim_customers t` as the whole row)
    over a relation holding PII would hand out the columns the allow-list hides."""
    for select in tree.find_all(exp.Select):
        sources = _direct_sources(select)
        by_alias = {}
        for source in sources:
            pii = _pii_relation(source, allow)
            if pii:
                by_alias[source.alias_or_name.lower()] = pii
                by_alias[source.name.lower()] = pii
        if not by_alias:
            continue
        for star in select.find_all(exp.Star):
            if star.find_ancestor(exp.Select) is not select or isinstance(star.parent, exp.Count):
                continue
            qualifier = star.parent.table.lower() if isinstance(star.parent, exp.Column) else ""
            if qualifier and qualifier not in by_alias:
                continue
            relation = by_alias.get(qualifier) or sorted(set(by_alias.values()))[0]
            hidden = ", ".join(sorted(allow.pii_columns[relation]))
            raise SQLRefused(
                "select_star_pii",
                f"* over {relation} would include its PII columns ({hidden}); name the columns",
            )
        for column in select.find_all(exp.Column):
            if column.find_ancestor(exp.Select) is not select or column.table:
                continue
            if column.name.lower() in by_alias:
                raise SQLRefused(
                    "whole_row",
                    f"{column.name!r} refers to a whole row of "
                    f"{by_alias[column.name.lower()]}, PII included; name the columns",
                )


# --- limit -------------------------------------------------------------------------------


def _apply_limit(tree: exp.Expr, max_rows: int) -> tuple[int, str]:
    current = tree.args.get("limit")
    if current is None:
        tree.set("limit", exp.Limit(expression=exp.Literal.number(max_rows)))
        return max_rows, "injected"
    if isinstance(current, exp.Fetch):
        count = current.args.get("count")
        options = current.args.get("limit_options")
        if options is not None and (options.args.get("percent") or options.args.get("with_ties")):
            raise SQLRefused("limit_not_literal", "FETCH ... PERCENT / WITH TIES is not allowed")
        requested = _integer(count) if count is not None else 1
    elif isinstance(current, exp.Limit):
        requested = _integer(current.expression)
    else:  # pragma: no cover - sqlglot puts only Limit or Fetch here
        raise SQLRefused("limit_not_literal", "unrecognized row limit")
    if requested is None:
        raise SQLRefused("limit_not_literal", "LIMIT must be a whole number")
    limit = min(requested, max_rows)
    tree.set("limit", exp.Limit(expression=exp.Literal.number(limit)))
    return limit, "capped" if requested > max_rows else "kept"


def _integer(node: exp.Expr) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            value = int(str(node.this))
        except ValueError:
            return None
        return value if value >= 0 else None
    return None
