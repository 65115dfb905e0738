{#- How long a fraud label takes to become known, in whole days: var('label_delay_days').
    The counterparty's "labelled past" windows end this long before the transaction, so that
    their transactions have had time to be reported and the fraud rate over them is not
    diluted by frauds nobody knows of yet (ml/features.py LABEL_DELAY_DAYS is the same
    number). At least 1. -#}
{% macro label_delay_days() -%}
    {%- set days = var('label_delay_days') -%}
    {%- if days is not number or days < 1 or days != days | int -%}
        {{ exceptions.raise_compiler_error(
            "var label_delay_days must be a whole number of days >= 1, got " ~ days
        ) }}
    {%- endif -%}
    {{ return(days | int) }}
{%- endmacro %}
