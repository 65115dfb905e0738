{#- How a processed table is written incrementally: delete+insert on DuckDB, an Iceberg merge
    on Athena. Kept in one place so every triaged model behaves the same. -#}
{% macro incremental_strategy() -%}
    {{ return('merge' if target.type == 'athena' else 'delete+insert') }}
{%- endmacro %}
