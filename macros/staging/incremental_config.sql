{#- How an incremental table is written: on DuckDB delete+insert of the rows that changed
    (changed_rows, below), an Iceberg merge on Athena. Kept in one place so every incremental
    model behaves the same. -#}
{% macro incremental_strategy() -%}
    {{ return('merge' if target.type == 'athena' else 'changed_rows') }}
{%- endmacro %}

{#- Incremental strategy changed_rows (DuckDB): delete+insert by unique_key of only the
    recomputed rows that are new or differ from their stored version; the table ends up the
    same as with delete+insert of every recomputed row. An incremental run recomputes more
    than changes (the re-read ingestion days, the unchanged rows of a recomputed day), and in
    DuckDB a commit that deletes rows spread over a table and inserts others rewrites every
    row group touched: rewriting unchanged rows costs far more than the comparison that skips
    them (docs/decisions/0008-changed-rows-incremental-writes.md). -#}
{% macro get_incremental_changed_rows_sql(arg_dict) -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='name') | list -%}
    delete from {{ arg_dict['temp_relation'] }} as recomputed
    using {{ arg_dict['target_relation'] }} as stored
    where
        {%- for key in keys %}
        stored.{{ key }} = recomputed.{{ key }} and
        {%- endfor %}
        {%- for column in columns %}
        stored.{{ adapter.quote(column) }} is not distinct from recomputed.{{ adapter.quote(column) }}
        {%- if not loop.last %} and{% endif %}
        {%- endfor %};

    {{ get_incremental_delete_insert_sql(arg_dict) }}
{%- endmacro %}

{#- The configuration every stg_<feed>_triaged model shares: incremental by raw row, so a
    re-read ingestion day replaces its rows instead of adding them again. On Athena an Iceberg
    table partitioned by ingestion day, the column every incremental run filters on. -#}
{% macro triaged_model_config() -%}
    {{ config(
        materialized='incremental',
        incremental_strategy=incremental_strategy(),
        unique_key='raw_row_key',
        table_type='iceberg',
        partitioned_by=athena_partitioned_by(['day(ingestion_date)']),
        on_schema_change='append_new_columns'
    ) }}
{%- endmacro %}
