{#- numerator / denominator as a decimal of `scale` digits, rounded half up (away from zero),
    exactly: what Athena computes for a decimal divided by an integer (Trino's decimal
    division keeps the larger scale and rounds half up). DuckDB divides a decimal as a
    double, so a quotient on a half cent lands on either side of it (138.89 / 2 = 69.445
    became 69.44; Athena says 69.45): there the quotient is taken in integers of the last
    digit. The numerator has at most `scale` decimals; the denominator is an integer (a
    count, nullif(..., 0) for an empty group gives null). -#}
{% macro decimal_divide(numerator, denominator, scale=2) -%}
    {{ return(adapter.dispatch('decimal_divide', 'banklake')(numerator, denominator, scale)) }}
{%- endmacro %}

{% macro default__decimal_divide(numerator, denominator, scale=2) -%}
    cast(
        (
            cast({{ numerator }} * {{ 10 ** scale }} as hugeint) * 2
            + sign({{ numerator }}) * {{ denominator }}
        ) // (2 * {{ denominator }}) as decimal(38, 0)
    ) * {{ '0.' ~ '0' * (scale - 1) ~ '1' if scale > 0 else '1' }}
{%- endmacro %}

{% macro athena__decimal_divide(numerator, denominator, scale=2) -%}
    cast({{ numerator }} as decimal(38, {{ scale }})) / {{ denominator }}
{%- endmacro %}
