{#- Cast that yields null instead of failing on bad input.
    dbt's own safe_cast is a plain cast on DuckDB, which aborts the whole run on one bad row. -#}
{% macro try_cast(expression, data_type) -%}
    {{ return(adapter.dispatch('try_cast', 'banklake')(expression, data_type)) }}
{%- endmacro %}

{% macro default__try_cast(expression, data_type) -%}
    try_cast({{ expression }} as {{ data_type }})
{%- endmacro %}

{% macro athena__try_cast(expression, data_type) -%}
    try(cast({{ expression }} as {{ data_type }}))
{%- endmacro %}
