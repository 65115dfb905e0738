{#- How tables are laid out on Athena (Iceberg), written so that DuckDB is unaffected.

    athena_partitioned_by(transforms): the `partitioned_by` config of an Iceberg table, e.g.
    ['day(event_date)'] (Iceberg partition transforms: identity, year, month, day, hour,
    bucket(n, col), truncate(n, col)), on Athena only. dbt-duckdb reads `partitioned_by` too
    (for DuckLake) and warns on plain DuckDB files, and `day(...)` is no DuckDB column: none
    there. -#}
{% macro athena_partitioned_by(transforms) -%}
    {{ return(transforms if target.type == 'athena' else none) }}
{%- endmacro %}


{#- A timestamp column written into a table: Iceberg stores microseconds, and Athena refuses
    to create an Iceberg column from a timestamp(3) expression (what date_parse, a plain
    `cast(... as timestamp)` and the Hive raw tables give), so on Athena the value is cast to
    the table's precision by dbt-athena's own rule (timestamp(6) in Iceberg tables, timestamp
    in views and Hive tables). DuckDB timestamps are microseconds already. -#}
{% macro cast_table_timestamp(expression) -%}
    {{ return(adapter.dispatch('cast_table_timestamp', 'banklake')(expression)) }}
{%- endmacro %}

{% macro default__cast_table_timestamp(expression) -%}
    cast({{ expression }} as timestamp)
{%- endmacro %}

{% macro athena__cast_table_timestamp(expression) -%}
    {{ cast_timestamp(expression) }}
{%- endmacro %}
