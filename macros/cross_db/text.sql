{#- Text helpers whose regular-expression flavour differs between DuckDB and Athena (Trino). -#}
{% macro regexp_remove(expression, pattern) -%}
    {{ return(adapter.dispatch('regexp_remove', 'banklake')(expression, pattern)) }}
{%- endmacro %}

{% macro default__regexp_remove(expression, pattern) -%}
    regexp_replace({{ expression }}, '{{ pattern }}', '', 'g')
{%- endmacro %}

{% macro athena__regexp_remove(expression, pattern) -%}
    regexp_replace({{ expression }}, '{{ pattern }}', '')
{%- endmacro %}


{#- "Maria da Silva" -> "M*** d*** S***": initials only, so a name never reaches curated in clear. -#}
{% macro mask_name(expression) -%}
    {{ return(adapter.dispatch('mask_name', 'banklake')(expression)) }}
{%- endmacro %}

{% macro default__mask_name(expression) -%}
    regexp_replace({{ expression }}, '(\S)\S*', '\1***', 'g')
{%- endmacro %}

{% macro athena__mask_name(expression) -%}
    regexp_replace({{ expression }}, '(\S)\S*', '$1***')
{%- endmacro %}


{#- Lower-case hex SHA-256 of a text value. -#}
{% macro sha256_hex(expression) -%}
    {{ return(adapter.dispatch('sha256_hex', 'banklake')(expression)) }}
{%- endmacro %}

{% macro default__sha256_hex(expression) -%}
    sha256({{ expression }})
{%- endmacro %}

{% macro athena__sha256_hex(expression) -%}
    lower(to_hex(sha256(to_utf8({{ expression }}))))
{%- endmacro %}


{#- One-way, salted hash for PII that curated marts may join on but never read.
    Set BANKLAKE_PII_SALT in production; the default only suits synthetic data. -#}
{% macro hash_pii(expression) -%}
    {{ sha256_hex("'" ~ env_var('BANKLAKE_PII_SALT', 'banklake-local-salt') ~ "' || " ~ expression) }}
{%- endmacro %}
