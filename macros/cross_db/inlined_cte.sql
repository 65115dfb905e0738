{#- The keyword that makes a CTE inlined into each query that reads it, never computed once
    and stored: DuckDB's `not materialized`. DuckDB otherwise materializes a CTE read more than
    once, and every read of a materialized CTE copies all its columns, whatever the reader
    selects: for ten million wide rows that copy cost more than computing the rows again.
    Inlined, each reader's filters reach the CTE's own scans. Nothing on Athena (Trino inlines
    every CTE). -#}
{% macro inlined_cte() -%}
    {{ return(adapter.dispatch('inlined_cte', 'banklake')()) }}
{%- endmacro %}

{% macro default__inlined_cte() -%}
{%- endmacro %}

{% macro duckdb__inlined_cte() -%}
    not materialized
{%- endmacro %}
