{#- True when an 11-digit string carries valid CPF check digits (Receita Federal's mod-11 rule).
    Portable SQL: only substr, cast and arithmetic, so DuckDB and Athena agree. -#}
{% macro cpf_check_digit(digits, length) -%}
    {%- set weighted -%}
        {%- for position in range(1, length + 1) -%}
            {{ try_cast("substr(" ~ digits ~ ", " ~ position ~ ", 1)", "integer") }} * {{ length + 2 - position }}
            {%- if not loop.last %} + {% endif -%}
        {%- endfor -%}
    {%- endset -%}
    case when mod({{ weighted }}, 11) < 2 then 0 else 11 - mod({{ weighted }}, 11) end
{%- endmacro %}

{% macro is_valid_cpf(digits) -%}
    (
        length({{ digits }}) = 11
        and {{ digits }} not in (
            '00000000000', '11111111111', '22222222222', '33333333333', '44444444444',
            '55555555555', '66666666666', '77777777777', '88888888888', '99999999999'
        )
        and {{ cpf_check_digit(digits, 9) }} = {{ try_cast("substr(" ~ digits ~ ", 10, 1)", "integer") }}
        and {{ cpf_check_digit(digits, 10) }} = {{ try_cast("substr(" ~ digits ~ ", 11, 1)", "integer") }}
    )
{%- endmacro %}
