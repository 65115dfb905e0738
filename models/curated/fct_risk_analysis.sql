-- Fraud count, rate and loss sliced one dimension at a time (long format: dimension, value).
-- For the scenario slice, the rate is the scenario's frauds over all transactions.
{%- set dimensions = {
    'channel': 'channel',
    'transaction_type': 'transaction_type',
    'event_hour': "lpad(cast(event_hour as varchar), 2, '0')",
    'customer_segment': 'customer_segment',
    'region': 'region',
} %}

with

-- only the columns the slices read: DuckDB materializes a CTE read more than once with every
-- column it selects
transactions as (

    select
        fct_transactions.channel,
        fct_transactions.transaction_type,
        fct_transactions.event_hour,
        fct_transactions.region,
        fct_transactions.is_fraud_reported,
        fct_transactions.is_approved,
        fct_transactions.amount_brl,
        fct_transactions.days_to_report,
        fct_transactions.fraud_scenario,
        dim_customers.segment as customer_segment
    from {{ ref('fct_transactions') }} as fct_transactions
    left join {{ ref('dim_customers') }} as dim_customers
        on fct_transactions.customer_id = dim_customers.customer_id

),

totals as (

    select count(*) as all_transactions from transactions

),

sliced as (

    {%- for dimension, expression in dimensions.items() %}
        select
            '{{ dimension }}' as dimension,
            coalesce({{ expression }}, 'unknown') as dimension_value,
            count(*) as transactions,
            sum(case when is_fraud_reported then 1 else 0 end) as fraud_transactions,
            sum(case when is_fraud_reported and is_approved then amount_brl else 0 end)
                as fraud_loss_brl,
            avg(case when is_fraud_reported then days_to_report end) as avg_days_to_report
        from transactions
        group by coalesce({{ expression }}, 'unknown')

        union all
    {% endfor %}

    select
        'fraud_scenario' as dimension,
        transactions.fraud_scenario as dimension_value,
        totals.all_transactions as transactions,
        count(*) as fraud_transactions,
        sum(
            case when transactions.is_approved then transactions.amount_brl else 0 end
        ) as fraud_loss_brl,
        avg(transactions.days_to_report) as avg_days_to_report
    from transactions
    cross join totals
    where transactions.is_fraud_reported
    group by transactions.fraud_scenario, totals.all_transactions

),

final as (

    select
        dimension,
        dimension_value,
        cast(transactions as bigint) as transactions,
        cast(fraud_transactions as bigint) as fraud_transactions,
        cast(fraud_loss_brl as decimal(18, 2)) as fraud_loss_brl,
        cast(avg_days_to_report as double) as avg_days_to_report,
        cast(fraud_transactions as double) / nullif(transactions, 0) as fraud_rate
    from sliced

)

select * from final
