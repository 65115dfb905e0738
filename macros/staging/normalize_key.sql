{#- The lookup key for free-text codes (types, channels): trimmed, lower case, inner runs of
    blanks, hyphens and underscores folded to one space. seeds/value_aliases.csv holds keys in
    this form; accents are spelled out there rather than stripped here. -#}
{% macro normalize_key(expression) -%}
    {{ return(adapter.dispatch('normalize_key', 'banklake')(expression)) }}
{%- endmacro %}

{% macro default__normalize_key(expression) -%}
    trim(regexp_replace(lower({{ expression }}), '[\s_-]+', ' ', 'g'))
{%- endmacro %}

{% macro athena__normalize_key(expression) -%}
    trim(regexp_replace(lower({{ expression }}), '[\s_-]+', ' '))
{%- endmacro %}
