-- Daily KPIs of the last 7 days by type, with the partition filter that keeps the scan small
-- (on Athena the curated facts are partitioned by day: filter on event_date, always).
with

latest as (

    select max(event_date) as latest_date from {{ ref('fct_daily_kpis') }}

),

kpis as (

    select kpis.*
    from {{ ref('fct_daily_kpis') }} as kpis
    cross join latest
    where kpis.event_date > latest.latest_date - interval '7' day

)

select
    event_date,
    transaction_type,
    sum(transactions) as transactions,
    sum(approved_volume_brl) as approved_volume_brl,
    sum(approved_volume_brl) / nullif(sum(approved_transactions), 0) as average_ticket_brl,
    sum(fraud_transactions) as fraud_transactions,
    cast(sum(fraud_transactions) as double) / sum(transactions) as fraud_rate
from kpis
group by event_date, transaction_type
order by event_date desc, transactions desc
