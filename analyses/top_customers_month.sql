-- The month's top 20 customers by approved outbound spend, with their segments.
-- Customers are identified by id only; the dimension holds no PII in clear.
with

latest as (

    select date_trunc('month', max(event_date)) as month_start
    from {{ ref('fct_transactions') }}

),

month_spend as (

    select
        transactions.customer_id,
        count(*) as transactions,
        sum(transactions.amount_brl) as spend_brl
    from {{ ref('fct_transactions') }} as transactions
    cross join latest
    where
        transactions.is_approved
        and transactions.direction = 'outbound'
        and transactions.event_date >= latest.month_start
    group by transactions.customer_id

)

select
    month_spend.customer_id,
    segments.business_segment,
    segments.behaviour_segment,
    customers.state,
    month_spend.transactions,
    month_spend.spend_brl
from month_spend
inner join {{ ref('dim_customer_segments') }} as segments
    on month_spend.customer_id = segments.customer_id
inner join {{ ref('dim_customers') }} as customers
    on month_spend.customer_id = customers.customer_id
order by month_spend.spend_brl desc
limit 20
