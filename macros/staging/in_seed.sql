{#- True when `expression` is one of the values of a seed's column, false otherwise (null
    included): a code's accepted values live in its seed, not as literals in a model. The
    seed's column is qualified, so a misspelt one fails instead of matching the model's own. -#}
{% macro in_seed(expression, seed, column=none) -%}
    coalesce(
        {{ expression }} in (select accepted.{{ column or expression }} from {{ ref(seed) }} as accepted),
        false
    )
{%- endmacro %}
