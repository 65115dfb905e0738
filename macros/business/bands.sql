{#- Business banding rules, defined once for every mart that reports by band. -#}
{% macro age_band(age_years) -%}
    case
        when {{ age_years }} is null then null  -- unknown birth date (imported customers)
        when {{ age_years }} < 25 then '18-24'
        when {{ age_years }} < 35 then '25-34'
        when {{ age_years }} < 45 then '35-44'
        when {{ age_years }} < 60 then '45-59'
        else '60+'
    end
{%- endmacro %}

{#- Monthly income bands in BRL. -#}
{% macro income_band(income_brl) -%}
    case
        when {{ income_brl }} is null then null  -- unknown income (imported customers)
        when {{ income_brl }} < 3000 then 'up_to_3k'
        when {{ income_brl }} < 7000 then '3k_to_7k'
        when {{ income_brl }} < 15000 then '7k_to_15k'
        when {{ income_brl }} < 30000 then '15k_to_30k'
        else 'over_30k'
    end
{%- endmacro %}

{#- Night is when account takeovers happen and customers are asleep: 00:00-05:59. -#}
{% macro is_night(hour_expression) -%}
    ({{ hour_expression }} < 6)
{%- endmacro %}
