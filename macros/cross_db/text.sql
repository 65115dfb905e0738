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
    The salt is BANKLAKE_PII_SALT (on AWS the CodeBuild runner reads it from Secrets Manager).
    Unset, a public default is used: it protects nothing (anyone can hash every CPF with it),
    which suits the synthetic lake on DuckDB only. So the athena target refuses to build
    tables without the variable: a hand-run build can never rehash production with it.
    Compile, parse and docs pass (they store no hash). The salt is written into the SQL as
    a literal, so a quote in it is refused. -#}
{% macro hash_pii(expression) -%}
    {%- set salt = env_var('BANKLAKE_PII_SALT', '') -%}
    {%- if not salt -%}
        {%- if execute and target.type == 'athena' and flags.WHICH in ('build', 'run', 'seed', 'snapshot', 'retry') -%}
            {{ exceptions.raise_compiler_error(
                "BANKLAKE_PII_SALT is not set: the athena target does not hash PII with the public "
                ~ "local default. Export the stack's secret (README, Run on AWS)."
            ) }}
        {%- endif -%}
        {%- set salt = 'banklake-local-salt' -%}
    {%- endif -%}
    {%- if "'" in salt -%}
        {{ exceptions.raise_compiler_error("BANKLAKE_PII_SALT must not contain a quote (') ") }}
    {%- endif -%}
    {{ sha256_hex("'" ~ salt ~ "' || " ~ expression) }}
{%- endmacro %}
