-- fct_daily_kpis_by_segment is fct_daily_kpis one level finer: summed over region and the
-- segments, every day x type x channel x state has the same figures. Returns the cells that
-- differ.
with

segmented as (

    select
        event_date,
        transaction_type,
        channel,
        state,
        sum(transactions) as transactions,
        sum(approved_transactions) as approved_transactions,
        sum(approved_volume_brl) as approved_volume_brl,
        sum(fraud_transactions) as fraud_transactions,
        sum(fraud_loss_brl) as fraud_loss_brl
    from {{ ref('fct_daily_kpis_by_segment') }}
    group by event_date, transaction_type, channel, state

),

daily as (

    select * from {{ ref('fct_daily_kpis') }}

)

select
    coalesce(daily.event_date, segmented.event_date) as event_date,
    coalesce(daily.transaction_type, segmented.transaction_type) as transaction_type,
    coalesce(daily.channel, segmented.channel) as channel,
    coalesce(daily.state, segmented.state) as state
from daily
full outer join segmented
    on
        daily.event_date = segmented.event_date
        and daily.transaction_type is not distinct from segmented.transaction_type
        and daily.channel is not distinct from segmented.channel
        and daily.state is not distinct from segmented.state
where
    daily.transactions is distinct from segmented.transactions
    or daily.approved_transactions is distinct from segmented.approved_transactions
    or daily.approved_volume_brl is distinct from segmented.approved_volume_brl
    or daily.fraud_transactions is distinct from segmented.fraud_transactions
    or daily.fraud_loss_brl is distinct from segmented.fraud_loss_brl
