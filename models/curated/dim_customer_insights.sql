-- Per-customer behaviour over the lake's history: RFM, tenure, ticket and preferred channel.
-- Spend counts approved outbound transactions only (money the customer chose to move).
with

spend as (

    select * from {{ ref('fct_transactions') }}
    where is_approved and direction = 'outbound'

),

customers as (

    select * from {{ ref('dim_customers') }}

),

as_of as (

    select * from {{ ref('int_lake_as_of') }}

),

channel_ranked as (

    select
        customer_id,
        channel,
        row_number() over (
            partition by customer_id order by count(*) desc, channel
        ) as channel_rank
    from spend
    group by customer_id, channel

),

type_ranked as (

    select
        customer_id,
        transaction_type,
        row_number() over (
            partition by customer_id order by count(*) desc, transaction_type
        ) as type_rank
    from spend
    group by customer_id, transaction_type

),

activity as (

    select
        customer_id,
        min(event_date) as first_transaction_date,
        max(event_date) as last_transaction_date,
        count(*) as transactions,
        count(distinct event_date) as active_days,
        sum(amount_brl) as spend_brl
    from spend
    group by customer_id

),

scored as (

    select
        activity.*,
        cast(
            {{ dbt.datediff('activity.last_transaction_date', 'as_of.as_of_date', 'day') }}
            as integer
        ) as recency_days,
        ntile(5) over (order by activity.last_transaction_date, activity.customer_id)
            as recency_score,
        ntile(5) over (order by activity.transactions, activity.customer_id) as frequency_score,
        ntile(5) over (order by activity.spend_brl, activity.customer_id) as monetary_score
    from activity
    cross join as_of

),

final as (

    select
        customers.customer_id,
        customers.segment,
        customers.tenure_days,
        scored.first_transaction_date,
        scored.last_transaction_date,
        scored.recency_days,
        cast(coalesce(scored.transactions, 0) as bigint) as transactions,
        cast(coalesce(scored.active_days, 0) as bigint) as active_days,
        cast(coalesce(scored.spend_brl, 0) as decimal(18, 2)) as spend_brl,
        cast(
            {{ decimal_divide('scored.spend_brl', 'nullif(scored.transactions, 0)') }}
            as decimal(18, 2)
        ) as average_ticket_brl,
        channel_ranked.channel as preferred_channel,
        type_ranked.transaction_type as preferred_transaction_type,
        cast(coalesce(scored.recency_score, 1) as integer) as recency_score,
        cast(coalesce(scored.frequency_score, 1) as integer) as frequency_score,
        cast(coalesce(scored.monetary_score, 1) as integer) as monetary_score
    from customers
    left join scored
        on customers.customer_id = scored.customer_id
    left join channel_ranked
        on customers.customer_id = channel_ranked.customer_id and channel_ranked.channel_rank = 1
    left join type_ranked
        on customers.customer_id = type_ranked.customer_id and type_ranked.type_rank = 1

)

select * from final
