-- Daily KPIs at the finest grain analysts slice by: day x type x channel x state.
-- Fraud figures count only what has been reported so far, so recent days rise as reports land.
-- On Athena an Iceberg table by event month: about 700 rows a day would make daily files tiny,
-- and a filter on event_date still reads only the months it touches.
{{ config(partitioned_by=athena_partitioned_by(['month(event_date)'])) }}

with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

daily as (

    select
        event_date,
        transaction_type,
        channel,
        state,
        {{ daily_kpi_sums() }}
    from transactions
    group by event_date, transaction_type, channel, state

),

final as (

    select
        event_date,
        transaction_type,
        channel,
        state,
        cast(transactions as bigint) as transactions,
        cast(approved_transactions as bigint) as approved_transactions,
        cast(approved_volume_brl as decimal(18, 2)) as approved_volume_brl,
        cast(
            {{ decimal_divide('approved_volume_brl', 'nullif(approved_transactions, 0)') }}
            as decimal(18, 2)
        ) as average_ticket_brl,
        cast(fraud_transactions as bigint) as fraud_transactions,
        cast(fraud_loss_brl as decimal(18, 2)) as fraud_loss_brl,
        cast(fraud_transactions as double) / transactions as fraud_rate
    from daily

)

select * from final
