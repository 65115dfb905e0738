-- fct_daily_kpis' figures one level finer: day x type x channel x state, and the region and the
-- customer's segments (dim_customers.segment, dim_customer_segments.business_segment). The
-- dashboard's region and segment filters and the daily report's segment anomalies read it,
-- rather than every transaction of the period (tests/assert_segmented_kpis_match_daily_kpis.sql
-- holds it to fct_daily_kpis). A customer's segments are the current ones, as the marts
-- they come from.
{{ config(partitioned_by=athena_partitioned_by(['month(event_date)'])) }}

with

transactions as (

    select
        event_date,
        transaction_type,
        channel,
        state,
        region,
        customer_id,
        is_approved,
        is_fraud_reported,
        amount_brl
    from {{ ref('fct_transactions') }}

),

customers as (

    select
        customer_id,
        segment
    from {{ ref('dim_customers') }}

),

segments as (

    select
        customer_id,
        business_segment
    from {{ ref('dim_customer_segments') }}

),

segmented as (

    select
        transactions.event_date,
        transactions.transaction_type,
        transactions.channel,
        transactions.state,
        transactions.is_approved,
        transactions.is_fraud_reported,
        transactions.amount_brl,
        coalesce(transactions.region, 'unknown') as region,
        coalesce(customers.segment, 'unknown') as customer_segment,
        coalesce(segments.business_segment, 'unknown') as business_segment
    from transactions
    left join customers
        on transactions.customer_id = customers.customer_id
    left join segments
        on transactions.customer_id = segments.customer_id

),

daily as (

    select
        event_date,
        transaction_type,
        channel,
        state,
        region,
        customer_segment,
        business_segment,
        {{ daily_kpi_sums() }}
    from segmented
    group by
        event_date,
        transaction_type,
        channel,
        state,
        region,
        customer_segment,
        business_segment

),

final as (

    select
        event_date,
        transaction_type,
        channel,
        state,
        region,
        customer_segment,
        business_segment,
        cast(transactions as bigint) as transactions,
        cast(approved_transactions as bigint) as approved_transactions,
        cast(approved_volume_brl as decimal(18, 2)) as approved_volume_brl,
        cast(fraud_transactions as bigint) as fraud_transactions,
        cast(fraud_loss_brl as decimal(18, 2)) as fraud_loss_brl
    from daily

)

select * from final
