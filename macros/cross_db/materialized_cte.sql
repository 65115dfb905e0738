{#- The keyword that makes a CTE computed once, on its own, before what reads it: DuckDB's
    `materialized`. On an incremental run a triaged model's raw read then opens only the
    partitions its filter names; inlined into the materialized CTEs that read it, DuckDB's
    optimizer no longer pushes that filter into the file list and reads every file. Nothing
    on Athena (Trino has no such keyword). -#}
{% macro materialized_cte() -%}
    {{ return(adapter.dispatch('materialized_cte', 'banklake')()) }}
{%- endmacro %}

{% macro default__materialized_cte() -%}
{%- endmacro %}

{% macro duckdb__materialized_cte() -%}
    materialized
{%- endmacro %}
