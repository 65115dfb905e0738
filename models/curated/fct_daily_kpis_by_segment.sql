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

daily as (

    select
        transactions.event_date,
        transactions.transaction_type,
        transactions.channel,
        transactions.state,
        coalesce(transactions.region, 'unknown') as region,
        coalesce(customers.segment, 'unknown') as customer_segment,
        coalesce(segments.business_segment, 'unknown') as business_segment,
        count(*) as transactions,
        sum(case when transactions.is_approved then 1 else 0 end) as approved_transactions,
        sum(
            case when transactions.is_approved then transactions.amount_brl else 0 end
        ) as approved_volume_brl,
        sum(case when transactions.is_fraud_reported then 1 else 0 end) as fraud_transactions,
        sum(
            case
                when transactions.is_fraud_reported and transactions.is_approved
                    then transactions.amount_brl
                else 0
            end
        ) as fraud_loss_brl
    from transactions
    left join customers
        on transactions.customer_id = customers.customer_id
    left join segments
        on transactions.customer_id = segments.customer_id
    group by
        transactions.event_date,
        transactions.transaction_type,
        transactions.channel,
        transactions.state,
        coalesce(transactions.region, 'unknown'),
        coalesce(customers.segment, 'unknown'),
        coalesce(segments.business_segment, 'unknown')

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
