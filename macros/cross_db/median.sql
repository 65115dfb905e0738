{#- Median of a numeric column: exact on DuckDB, approximate on Athena (Trino has no exact one). -#}
{% macro median(expression) -%}
    {{ return(adapter.dispatch('median', 'banklake')(expression)) }}
{%- endmacro %}

{% macro default__median(expression) -%}
    median({{ expression }})
{%- endmacro %}

{% macro athena__median(expression) -%}
    approx_percentile({{ expression }}, 0.5)
{%- endmacro %}
