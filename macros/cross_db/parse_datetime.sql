{#- Strict parsing of the raw layer's text timestamps and dates; anything else is null
    (and rejected by the processed layer with its reason). -#}
{% macro parse_timestamp(expression) -%}
    {{ return(adapter.dispatch('parse_timestamp', 'banklake')(expression)) }}
{%- endmacro %}

{% macro default__parse_timestamp(expression) -%}
    try_strptime({{ expression }}, '%Y-%m-%d %H:%M:%S')
{%- endmacro %}

{#- date_parse gives timestamp(3), Iceberg columns are timestamp(6): see athena_storage.sql -#}
{% macro athena__parse_timestamp(expression) -%}
    {{ cast_table_timestamp("try(date_parse(" ~ expression ~ ", '%Y-%m-%d %H:%i:%s'))") }}
{%- endmacro %}


{% macro parse_date(expression) -%}
    {{ return(adapter.dispatch('parse_date', 'banklake')(expression)) }}
{%- endmacro %}

{% macro default__parse_date(expression) -%}
    cast(try_strptime({{ expression }}, '%Y-%m-%d') as date)
{%- endmacro %}

{% macro athena__parse_date(expression) -%}
    try(cast(date_parse({{ expression }}, '%Y-%m-%d') as date))
{%- endmacro %}


{#- ISO day of week: 1 = Monday .. 7 = Sunday. -#}
{% macro iso_day_of_week(expression) -%}
    {{ return(adapter.dispatch('iso_day_of_week', 'banklake')(expression)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(expression) -%}
    isodow({{ expression }})
{%- endmacro %}

{% macro athena__iso_day_of_week(expression) -%}
    day_of_week({{ expression }})
{%- endmacro %}


{#- The ingestion date of a raw row, from its Hive partition columns (text on both engines). -#}
{% macro partition_date(year_column='year', month_column='month', day_column='day') -%}
    cast({{ year_column }} || '-' || {{ month_column }} || '-' || {{ day_column }} as date)
{%- endmacro %}
