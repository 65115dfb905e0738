{#- The daily KPIs' sums over rows with fct_transactions' columns (is_approved,
    is_fraud_reported, amount_brl), for a query's group by: one definition for every mart
    that counts them. A fraud's loss is what was approved of it. -#}
{% macro daily_kpi_sums() -%}
    count(*) as transactions,
        sum(case when is_approved then 1 else 0 end) as approved_transactions,
        sum(case when is_approved then amount_brl else 0 end) as approved_volume_brl,
        sum(case when is_fraud_reported then 1 else 0 end) as fraud_transactions,
        sum(
            case when is_fraud_reported and is_approved then amount_brl else 0 end
        ) as fraud_loss_brl
{%- endmacro %}
