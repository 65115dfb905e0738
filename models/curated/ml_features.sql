-- The fraud model's features: one row per accepted transaction, from what was knowable at its
-- event_ts. Windows are the previous hour or 1/7/30 days, (event_ts - N, event_ts], without
-- the transaction itself (window frames, never self-joins: macros/cross_db/rolling_window.sql,
-- macros/features/windows.sql); counterparty frauds count only reports made by event_ts.
-- Columns and their order are the contract in ml/features.py (keys, labels, features).
--
-- Incremental: a run recomputes the days from the earliest of (last featured day - lookback,
-- day of any transaction not featured yet, day of any fraud report not reflected yet), reading
-- var('feature_lookback_days') + 1 days of history before that for the windows (one day more
-- than the longest window: cp_unusual_state_share_1d looks, over the counterparty's previous
-- day, at each of those transactions' own previous 30 days). Older rows keep their features
-- (they depend only on the past), but their label columns are the label as known now: rows
-- whose stored label differs from fct_transactions' are re-written with the stored features
-- and the new label.
{{ config(
    materialized='incremental',
    incremental_strategy=incremental_strategy(),
    unique_key='transaction_id',
    table_type='iceberg',
    partitioned_by=athena_partitioned_by(['day(event_date)']),
    on_schema_change='fail'
) }}

{%- set key_columns = [
    'transaction_id', 'event_ts', 'event_date', 'customer_id', 'account_id',
    'counterparty_key', 'transaction_type', 'channel', 'direction', 'amount_brl',
] %}
{%- set feature_columns = [
    'amount_log', 'event_hour', 'is_night', 'is_weekend', 'is_outbound',
    'is_pix', 'is_ted', 'is_boleto', 'is_debit', 'is_credit',
    'is_mobile', 'is_internet_banking', 'is_atm', 'is_pos', 'is_branch',
    'cust_tx_count_1d', 'cust_tx_count_7d', 'cust_tx_count_30d',
    'cust_amount_sum_1d', 'cust_amount_sum_7d', 'cust_amount_sum_30d',
    'cust_amount_avg_30d', 'cust_seconds_since_prev_tx',
    'amount_ratio_to_avg_30d', 'amount_zscore_30d',
    'is_first_time_counterparty', 'is_new_device',
    'cp_tx_count_1d', 'cp_tx_count_7d', 'cp_tx_count_30d',
    'cp_fraud_reported_1d', 'cp_fraud_reported_7d', 'cp_fraud_reported_30d',
    'cp_fraud_rate_30d',
    'cust_inbound_count_1d', 'cust_inbound_new_sender_count_7d',
    'cust_inbound_amount_1d', 'outbound_to_inbound_ratio_1d',
    'cust_tx_count_1h', 'cust_declined_count_1h',
    'amount_ratio_to_max_30d',
    'cust_device_seconds_since_first_use', 'device_other_customers_30d',
    'cp_new_customer_count_1d',
    'cust_same_state_share_30d', 'cp_unusual_state_share_1d',
    'cust_inbound_new_sender_count_1d',
] %}

{#- Window partitions: a missing counterparty, device or state gets a partition of its own (no
    history) from the transaction id, which every window operator carries anyway; a coalesced
    key column would be one more string for each of them to sort and copy. -#}
{%- set counterparty_partition =
    'counterparty_key, case when counterparty_key is null then transaction_id end' %}
{%- set device_partition = 'device_id, case when device_id is null then transaction_id end' %}
{%- set state_partition = 'state, case when state is null then transaction_id end' %}

{#- Incremental runs: where to start, computed before the run so that the filters below are
    literal dates (on Athena they prune the Iceberg partitions of the tables read). -#}
{%- set label_changed -%}
    stored.label_is_fraud is distinct from labels.is_fraud_reported
    or stored.label_reported_at is distinct from labels.fraud_reported_at
    or stored.label_scenario is distinct from labels.fraud_scenario
{%- endset %}
{%- if is_incremental() %}
    {%- set bounds_query %}
        with
        stored as (select * from {{ this }}),
        labels as (select * from {{ ref('fct_transactions') }}),
        candidates as (
            -- the last featured day, minus the usual lookback
            select
                cast({{ dbt.dateadd('day', -1 * var('lookback_days'), 'max(event_date)') }} as date)
                    as from_date
            from stored
            union all
            -- new days and late arrivals: transactions not featured yet
            select min(labels.event_date) as from_date
            from labels
            left join stored on labels.transaction_id = stored.transaction_id
            where stored.transaction_id is null
            union all
            -- a fraud reported since the last run changes counterparty features from its report
            select min(cast(labels.fraud_reported_at as date)) as from_date
            from stored
            inner join labels on stored.transaction_id = labels.transaction_id
            where {{ label_changed }}
        ),
        first_day as (
            select coalesce(min(from_date), date '9999-12-31') as recompute_from
            from candidates
        )
        select
            cast(recompute_from as varchar) as recompute_from,
            cast(
                cast({{ dbt.dateadd('day', -1 * (var('feature_lookback_days') + 1), 'recompute_from') }} as date)
                as varchar
            ) as history_from
        from first_day
    {%- endset %}
    {%- set bounds = run_query(bounds_query) if execute else none %}
    {%- set recompute_from = bounds.columns[0].values()[0] if bounds is not none else '9999-12-31' %}
    {%- set history_from = bounds.columns[1].values()[0] if bounds is not none else '9999-12-31' %}
{%- endif %}

with

labels as (

    select
        transaction_id,
        is_fraud_reported,
        fraud_reported_at,
        fraud_scenario
    from {{ ref('fct_transactions') }}

),

transactions as (

    select * from {{ ref('fct_transactions') }}
    {%- if is_incremental() %}
        where event_date >= date '{{ history_from }}'
    {%- endif %}

),

-- each customer's latest transaction before the history read, for the time since the previous
-- one (none on a full build, which reads the whole history)
earlier_activity as (

    select
        customer_id,
        max(event_ts) as last_event_ts
    {%- if is_incremental() %}
        from {{ this }}
        where event_date < date '{{ history_from }}'
    {%- else %}
        from transactions
        where false
    {%- endif %}
    group by customer_id

),

counterparty_first_seen as (

    select * from {{ ref('int_customer_counterparty_first_seen') }}

),

device_first_seen as (

    select * from {{ ref('int_customer_device_first_seen') }}

),

frauds as (

    select
        transaction_id,
        counterparty_key,
        event_ts,
        fraud_reported_at
    from {{ ref('fct_transactions') }}
    where is_fraud_reported
    {%- if is_incremental() %}
        and event_date >= date '{{ history_from }}'
    {%- endif %}

),

enriched as (

    select
        transactions.transaction_id,
        transactions.event_ts,
        transactions.event_date,
        transactions.customer_id,
        transactions.account_id,
        transactions.counterparty_key,
        transactions.transaction_type,
        transactions.channel,
        transactions.direction,
        transactions.amount_brl,
        transactions.event_hour,
        transactions.is_night,
        transactions.is_weekend,
        transactions.state,
        transactions.device_id,
        device_first_seen.first_event_ts as device_first_event_ts,
        coalesce(transactions.status = 'declined', false) as is_declined,
        coalesce(
            counterparty_first_seen.first_transaction_id = transactions.transaction_id, false
        ) as is_first_time_counterparty,
        coalesce(
            device_first_seen.first_transaction_id = transactions.transaction_id, false
        ) as is_new_device
    from transactions
    left join counterparty_first_seen
        on
            transactions.customer_id = counterparty_first_seen.customer_id
            -- by transaction, not key: curated keys are pseudonymized, the processed layer's not
            and transactions.transaction_id = counterparty_first_seen.first_transaction_id
    left join device_first_seen
        on
            transactions.customer_id = device_first_seen.customer_id
            and transactions.device_id = device_first_seen.device_id

),

-- sums stay in exact decimals so that any run computes the very same values
windowed as (

    select
        *,
        {%- for days in [1, 7, 30] %}
            {{ count_over_previous_days('customer_id', days) }} as cust_tx_count_{{ days }}d,
            {{ sum_over_previous_days('amount_brl', 'customer_id', days) }}
                as cust_amount_sum_{{ days }}d,
        {%- endfor %}
        {{ sum_over_previous_days('amount_brl * amount_brl', 'customer_id', 30) }}
            as cust_amount_squares_30d,
        {{ sum_over_previous_days('1', 'customer_id', 1, "direction = 'inbound'") }}
            as cust_inbound_count_1d,
        {{ sum_over_previous_days('amount_brl', 'customer_id', 1, "direction = 'inbound'") }}
            as cust_inbound_amount_1d,
        {{ sum_over_previous_days(
            '1', 'customer_id', 7, "direction = 'inbound' and is_first_time_counterparty"
        ) }} as cust_inbound_new_sender_count_7d,
        {{ sum_over_previous_days(
            '1', 'customer_id', 1, "direction = 'inbound' and is_first_time_counterparty"
        ) }} as cust_inbound_new_sender_count_1d,
        {{ count_over_previous_hours('customer_id', 1) }} as cust_tx_count_1h,
        {{ sum_over_previous_hours('1', 'customer_id', 1, 'is_declined') }}
            as cust_declined_count_1h,
        {{ max_over_earlier_days('amount_brl', 'customer_id, transaction_type, direction', 30) }}
            as earlier_max_amount_30d,
        -- customers whose first use of the device falls in the window; the customer's own
        -- first use is taken out below
        {{ sum_over_previous_days('1', device_partition, 30, 'is_new_device') }}
            as device_new_customers_30d,
        {{ count_over_previous_days('customer_id, ' ~ state_partition, 30) }}
            as cust_same_state_count_30d,
        {{ previous_event_ts('customer_id') }} as previous_event_ts_read
    from enriched

),

-- a transaction in a state where its customer did nothing in the previous 30 days (but did
-- something elsewhere)
unusual_state as (

    select
        *,
        coalesce(
            state is not null and cust_tx_count_30d > 0 and cust_same_state_count_30d = 0, false
        ) as is_unusual_state
    from windowed

),

-- the counterparty's windows, all in one pass over its partition
counterparty_windowed as (

    select
        *,
        {%- for days in [1, 7, 30] %}
            {{ count_over_previous_days(counterparty_partition, days) }}
                as cp_tx_count_{{ days }}d,
        {%- endfor %}
        {{ sum_over_previous_days('1', counterparty_partition, 1, 'is_first_time_counterparty') }}
            as cp_new_customer_count_1d,
        {{ sum_over_previous_days('1', counterparty_partition, 1, 'is_unusual_state') }}
            as cp_unusual_state_count_1d
    from unusual_state

),

current_rows as (

    select
        counterparty_windowed.*,
        coalesce(
            counterparty_windowed.previous_event_ts_read, earlier_activity.last_event_ts
        ) as previous_event_ts
    from counterparty_windowed
    left join earlier_activity
        on counterparty_windowed.customer_id = earlier_activity.customer_id
    {%- if is_incremental() %}
        where counterparty_windowed.event_date >= date '{{ recompute_from }}'
    {%- endif %}

),

counterparty_frauds as (

    select
        current_rows.transaction_id,
        {%- for days in [1, 7] %}
            sum(
                case
                    when {{ is_within_previous_days('frauds.event_ts', 'current_rows.event_ts', days) }}
                        then 1
                    else 0
                end
            ) as cp_fraud_reported_{{ days }}d,
        {%- endfor %}
        count(*) as cp_fraud_reported_30d
    from current_rows
    inner join frauds
        on
            current_rows.counterparty_key = frauds.counterparty_key
            and current_rows.transaction_id != frauds.transaction_id
            and current_rows.event_ts >= frauds.fraud_reported_at
            and {{ is_within_previous_days('frauds.event_ts', 'current_rows.event_ts', 30) }}
    group by current_rows.transaction_id

),

computed as (

    select
        current_rows.transaction_id,
        current_rows.event_ts,
        current_rows.event_date,
        current_rows.customer_id,
        current_rows.account_id,
        current_rows.counterparty_key,
        current_rows.transaction_type,
        current_rows.channel,
        current_rows.direction,
        cast(current_rows.amount_brl as double) as amount_brl,

        -- the transaction itself
        ln(1 + cast(current_rows.amount_brl as double)) as amount_log,
        current_rows.event_hour,
        current_rows.is_night,
        current_rows.is_weekend,
        current_rows.direction = 'outbound' as is_outbound,
        current_rows.transaction_type = 'PIX' as is_pix,
        current_rows.transaction_type = 'TED' as is_ted,
        current_rows.transaction_type = 'BOLETO' as is_boleto,
        current_rows.transaction_type = 'DEBIT' as is_debit,
        current_rows.transaction_type = 'CREDIT' as is_credit,
        current_rows.channel = 'mobile' as is_mobile,
        current_rows.channel = 'internet_banking' as is_internet_banking,
        current_rows.channel = 'atm' as is_atm,
        current_rows.channel = 'pos' as is_pos,
        current_rows.channel = 'branch' as is_branch,

        -- the customer's own history
        {%- for days in [1, 7, 30] %}
            cast(current_rows.cust_tx_count_{{ days }}d as bigint) as cust_tx_count_{{ days }}d,
            cast(current_rows.cust_amount_sum_{{ days }}d as double) as cust_amount_sum_{{ days }}d,
        {%- endfor %}
        cast(current_rows.cust_amount_sum_30d as double)
        / nullif(current_rows.cust_tx_count_30d, 0) as cust_amount_avg_30d,
        cast(
            {{ dbt.datediff('current_rows.previous_event_ts', 'current_rows.event_ts', 'second') }}
            as bigint
        ) as cust_seconds_since_prev_tx,
        cast(current_rows.amount_brl as double)
        / (
            cast(current_rows.cust_amount_sum_30d as double)
            / nullif(current_rows.cust_tx_count_30d, 0)
        ) as amount_ratio_to_avg_30d,
        -- sample standard deviation from exact sums: n * sum(x^2) - sum(x)^2 is exactly 0
        -- when every previous amount is equal, and the z-score is then undefined (null)
        (
            cast(current_rows.amount_brl as double)
            - cast(current_rows.cust_amount_sum_30d as double)
            / nullif(current_rows.cust_tx_count_30d, 0)
        )
        / nullif(
            sqrt(
                cast(
                    current_rows.cust_tx_count_30d * current_rows.cust_amount_squares_30d
                    - current_rows.cust_amount_sum_30d * current_rows.cust_amount_sum_30d
                    as double
                )
                / nullif(
                    current_rows.cust_tx_count_30d * (current_rows.cust_tx_count_30d - 1), 0
                )
            ),
            0
        ) as amount_zscore_30d,
        current_rows.is_first_time_counterparty,
        current_rows.is_new_device,

        -- the counterparty, all customers
        {%- for days in [1, 7, 30] %}
            cast(current_rows.cp_tx_count_{{ days }}d as bigint) as cp_tx_count_{{ days }}d,
        {%- endfor %}
        {%- for days in [1, 7, 30] %}
            cast(
                coalesce(counterparty_frauds.cp_fraud_reported_{{ days }}d, 0) as bigint
            ) as cp_fraud_reported_{{ days }}d,
        {%- endfor %}
        cast(coalesce(counterparty_frauds.cp_fraud_reported_30d, 0) as double)
        / nullif(current_rows.cp_tx_count_30d, 0) as cp_fraud_rate_30d,

        -- mule signals
        cast(current_rows.cust_inbound_count_1d as bigint) as cust_inbound_count_1d,
        cast(
            current_rows.cust_inbound_new_sender_count_7d as bigint
        ) as cust_inbound_new_sender_count_7d,
        cast(current_rows.cust_inbound_amount_1d as double) as cust_inbound_amount_1d,
        case
            when current_rows.direction = 'outbound'
                then
                    cast(current_rows.amount_brl as double)
                    / nullif(cast(current_rows.cust_inbound_amount_1d as double), 0)
            else 0
        end as outbound_to_inbound_ratio_1d,

        -- bursts within the hour (card testing)
        cast(current_rows.cust_tx_count_1h as bigint) as cust_tx_count_1h,
        cast(current_rows.cust_declined_count_1h as bigint) as cust_declined_count_1h,
        -- amount against the largest earlier one of the same kind (social engineering)
        cast(current_rows.amount_brl as double)
        / nullif(cast(current_rows.earlier_max_amount_30d as double), 0) as amount_ratio_to_max_30d,
        -- devices (account takeover): how new for the customer, shared with other customers
        cast(
            {{ dbt.datediff('current_rows.device_first_event_ts', 'current_rows.event_ts', 'second') }}
            as bigint
        ) as cust_device_seconds_since_first_use,
        cast(
            current_rows.device_new_customers_30d
            - case
                when
                    current_rows.device_first_event_ts is not null
                    and not current_rows.is_new_device
                    and {{ is_within_previous_days(
                        'current_rows.device_first_event_ts', 'current_rows.event_ts', 30
                    ) }}
                    then 1
                else 0
            end
            as bigint
        ) as device_other_customers_30d,
        -- the counterparty's new customers and where they come from (compromised terminals)
        cast(current_rows.cp_new_customer_count_1d as bigint) as cp_new_customer_count_1d,
        case
            when current_rows.state is not null
                then
                    cast(current_rows.cust_same_state_count_30d as double)
                    / nullif(current_rows.cust_tx_count_30d, 0)
        end as cust_same_state_share_30d,
        cast(current_rows.cp_unusual_state_count_1d as double)
        / nullif(current_rows.cp_tx_count_1d, 0) as cp_unusual_state_share_1d,
        -- mule: new senders within the day
        cast(
            current_rows.cust_inbound_new_sender_count_1d as bigint
        ) as cust_inbound_new_sender_count_1d
    from current_rows
    left join counterparty_frauds
        on current_rows.transaction_id = counterparty_frauds.transaction_id

),

rows_to_write as (

    select
        {%- for column in key_columns + feature_columns %}
            {{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from computed
    {%- if is_incremental() %}

        union all

        -- older rows whose label changed: stored features, label refreshed in final
        select
            {%- for column in key_columns + feature_columns %}
                stored.{{ column }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        from {{ this }} as stored
        inner join labels
            on stored.transaction_id = labels.transaction_id
        where
            stored.event_date < date '{{ recompute_from }}'
            and ({{ label_changed }})
    {%- endif %}

),

final as (

    select
        {%- for column in key_columns %}
            rows_to_write.{{ column }},
        {%- endfor %}
        labels.is_fraud_reported as label_is_fraud,
        labels.fraud_reported_at as label_reported_at,
        labels.fraud_scenario as label_scenario,
        {%- for column in feature_columns %}
            rows_to_write.{{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from rows_to_write
    inner join labels
        on rows_to_write.transaction_id = labels.transaction_id

)

select * from final
