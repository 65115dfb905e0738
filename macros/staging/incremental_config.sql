{#- How a processed table is written incrementally: delete+insert on DuckDB, an Iceberg merge
    on Athena. Kept in one place so every triaged model behaves the same. -#}
{% macro incremental_strategy() -%}
    {{ return('merge' if target.type == 'athena' else 'delete+insert') }}
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
