{#- Layer schemas by name (processed, curated, snapshots, reference) in the local DuckDB file,
    so analysts write `curated.fct_transactions`. On shared warehouses (Athena: one Glue
    database per schema in an account) dbt's default prefix keeps environments apart. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif target.type == 'duckdb' -%}
        {{ custom_schema_name | trim }}
    {%- else -%}
        {{ target.schema }}_{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
