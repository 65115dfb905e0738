-- The fraud model's features: one row per accepted transaction, from what was knowable at its
-- event_ts. Windows are the previous hour or 1/7/30 days, (event_ts - N, event_ts], without
-- the transaction itself (window frames, never self-joins: macros/cross_db/rolling_window.sql,
-- macros/features/windows.sql); counterparty frauds count only reports made by event_ts.
-- The counterparty's fraud rates look at its "labelled past", (event_ts - delay - N,
-- event_ts - delay] with delay = var label_delay_days: transactions old enough for their
-- frauds to have been reported, so that the rate's numerator and denominator come from the
-- same, mature window (a rate over the last days would divide the known frauds by
-- transactions whose frauds nobody has reported yet).
-- Columns and their order are the contract in ml/features.py (keys, labels, features).
--
-- Incremental: a run recomputes every row from new_from, the first day with no featured row.
-- Late data (a transaction of a featured day not featured yet, a fraud reported since the last
-- run) changes older rows only in the partitions it enters: from late_from, the day of the
-- earliest such change, the run recomputes the rows of the late customers, devices and
-- counterparties (the "late scope", macros/features/incremental_windows.sql), and each of their
-- features comes from its own partition's computation if that is in the scope, else from the
-- stored row. Windows do not re-read their days row by row: the history that every recomputed
-- row's window of more than a day holds whole enters as per-partition totals (*_history, a
-- few columns of fct_transactions, no join), and the frames read only the recomputed days, the
-- day before them and the history at the windows' far edge: the customer's windows the edges
-- of theirs (7 and 30 days), the counterparty's the further edges of its labelled past too,
-- and only for the counterparties of rows the run writes. Only the framed rows are joined to
-- the first-seen tables. The 1-day windows of rows not recomputed need their
-- unusual-state flags: those are read from their stored features. Older rows keep their
-- features (they depend only on the past), but their label columns are the label as known now:
-- rows whose stored label differs from fct_transactions' (found among the reported
-- transactions, so the check costs what the frauds do) are re-written with the stored features
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
    'cust_amount_avg_1d', 'cust_amount_avg_7d', 'cust_amount_avg_30d',
    'cust_seconds_since_prev_tx',
    'amount_ratio_to_avg_1d', 'amount_ratio_to_avg_7d', 'amount_ratio_to_avg_30d',
    'amount_zscore_30d',
    'is_first_time_counterparty', 'is_new_device',
    'cp_tx_count_1d', 'cp_tx_count_7d', 'cp_tx_count_30d',
    'cp_fraud_reported_30d',
    'cp_labelled_tx_count_1d', 'cp_labelled_tx_count_7d', 'cp_labelled_tx_count_30d',
    'cp_labelled_fraud_rate_1d', 'cp_labelled_fraud_rate_7d', 'cp_labelled_fraud_rate_30d',
    'cust_inbound_count_1d', 'cust_inbound_new_sender_count_7d',
    'cust_inbound_amount_1d', 'outbound_to_inbound_ratio_1d',
    'cust_tx_count_1h', 'cust_declined_count_1h',
    'amount_ratio_to_max_30d',
    'cust_device_seconds_since_first_use', 'device_other_customers_30d',
    'cp_new_customer_count_1d',
    'cust_same_state_share_30d', 'cp_unusual_state_share_1d',
    'cust_inbound_new_sender_count_1d',
] %}

{#- enriched's columns: the transaction and what the windows need of it -#}
{%- set enriched_columns = [
    'transaction_id', 'event_ts', 'event_date', 'customer_id', 'account_id', 'counterparty_key',
    'transaction_type', 'channel', 'direction', 'amount_brl', 'event_hour', 'is_night',
    'is_weekend', 'state', 'device_id', 'device_first_event_ts', 'is_declined',
    'is_first_time_counterparty', 'is_new_device',
] %}

{#- Incremental runs: whether the row's customer, counterparty and device are in the late scope
    (macros/features/incremental_windows.sql) -#}
{%- set late_scope_flags = [
    'customer_in_late_scope', 'counterparty_in_late_scope', 'device_in_late_scope',
] if is_incremental() else [] %}

{#- Window partitions: a missing counterparty, device or state gets a partition of its own (no
    history) from the transaction id, which every window operator carries anyway; a coalesced
    key column would be one more string for each of them to sort and copy. -#}
{%- set counterparty_partition =
    'counterparty_key, case when counterparty_key is null then transaction_id end' %}
{%- set device_partition = 'device_id, case when device_id is null then transaction_id end' %}
{%- set state_partition = 'state, case when state is null then transaction_id end' %}

{#- Incremental runs: where to start, computed before the run so that the filters below are
    literal dates (on Athena they prune the Iceberg partitions of the tables read). -#}
{#- A stored row's label against `labels`, the reported transactions (fct_transactions'
    reported rows) left-joined on transaction_id: every other transaction's label is "not
    reported", with no report time or scenario (fct_transactions sets those from its reports
    only). Comparing against the reported rows alone keeps the check's cost with the frauds,
    not with every transaction of the history. -#}
{%- set label_changed -%}
    stored.label_is_fraud is distinct from (labels.transaction_id is not null)
    or stored.label_reported_at is distinct from labels.fraud_reported_at
    or stored.label_scenario is distinct from labels.fraud_scenario
{%- endset %}
{#- the customer's long windows (ml/features.py WINDOW_DAYS) -#}
{%- set long_windows = [7, 30] %}
{#- The counterparty's windows over the labelled past: (event_ts - delay - N days, event_ts -
    delay], whose frauds have had time to be reported. Each is the difference of two windows
    ending at the transaction, over delay + N and over delay days. -#}
{%- set label_delay = label_delay_days() %}
{%- set labelled_windows = [1, 7, 30] %}
{%- set counterparty_windows = [1, 7, 30, label_delay] %}
{%- for days in labelled_windows %}
{%- do counterparty_windows.append(label_delay + days) %}
{%- endfor %}
{%- set counterparty_windows = counterparty_windows | unique | sort | list %}
{%- set counterparty_long_windows = counterparty_windows | reject('equalto', 1) | list %}
{#- a partition's shared totals are those of its own set of recomputed rows (shared_total) -#}
{%- set customer_scope = 'windowed.customer_in_late_scope' %}
{%- set device_scope = 'windowed.device_in_late_scope' %}
{%- set counterparty_scope = 'counterparty_windowed.counterparty_in_late_scope' %}
{#- the windows whose history an incremental run reads as totals: every window over a day -#}
{%- set history_windows = (long_windows + counterparty_long_windows) | unique | sort | list %}
{%- if is_incremental() %}
{%- set bounds_query %}
        with
        stored as (select * from {{ this }}),
        labels as (select * from {{ ref('fct_transactions') }}),
        reported as (select * from labels where is_fraud_reported),
        -- the first day with no featured row: recomputed in full from there on
        new_day as (
            select
                coalesce(
                    cast({{ dbt.dateadd('day', 1, 'max(event_date)') }} as date),
                    (select min(event_date) from labels),
                    date '9999-12-31'
                ) as new_from
            from stored
        ),
        -- Late arrivals: transactions not featured yet (the new days' ones too: capped below).
        -- The featured rows are some of fct_transactions' (it never loses a row; the
        -- relationships and row_count_matches_source tests hold it), so a day has one exactly
        -- when it has more transactions than featured rows: two counts by day, not a join of
        -- every transaction with every featured row.
        labels_by_day as (
            select event_date, count(*) as transactions from labels group by event_date
        ),
        stored_by_day as (
            select event_date, count(*) as featured from stored group by event_date
        ),
        candidates as (
            select min(labels_by_day.event_date) as from_date
            from labels_by_day
            left join stored_by_day on labels_by_day.event_date = stored_by_day.event_date
            where labels_by_day.transactions > coalesce(stored_by_day.featured, 0)
            union all
            -- a fraud reported since the last run changes counterparty features from its report
            select min(cast(labels.fraud_reported_at as date)) as from_date
            -- (a report date exists only on reported rows: the hash join is built on those)
            from stored
            inner join reported as labels on stored.transaction_id = labels.transaction_id
            where {{ label_changed }}
        ),
        first_days as (
            select
                new_day.new_from,
                coalesce(least(min(candidates.from_date), new_day.new_from), new_day.new_from)
                    as late_from
            from new_day
            cross join candidates
            group by new_day.new_from
        ),
        -- the day after the last one recomputed
        end_day as (
            select cast({{ dbt.dateadd('day', 1, 'max(event_date)') }} as date) as end_date
            from labels
        ),
        bounds as (
            select
{%- for tier in ['new', 'late'] %}
{%- for days in [1] + history_windows %}
                    cast(
                        {{ dbt.dateadd('day', -1 * days, 'first_days.' ~ tier ~ '_from') }} as date
                    ) as {{ tier }}_window_{{ days }}d_from,
{%- endfor %}
{%- for days in history_windows %}
                    least(
                        cast({{ dbt.dateadd('day', -1 * days, 'end_day.end_date') }} as date),
                        first_days.{{ tier }}_from
                    ) as {{ tier }}_shared_{{ days }}d_from,
{%- endfor %}
{%- endfor %}
                first_days.new_from,
                first_days.late_from
            from first_days
            cross join end_day
        )
        select
{%- for tier in ['new', 'late'] %}
{%- for days in [1] + history_windows %}
                cast({{ tier }}_window_{{ days }}d_from as varchar) as {{ tier }}_window_{{ days }}d_from,
{%- endfor %}
{%- for days in history_windows %}
                cast(coalesce({{ tier }}_shared_{{ days }}d_from, {{ tier }}_from) as varchar)
                    as {{ tier }}_shared_{{ days }}d_from,
{%- endfor %}
{%- endfor %}
            cast(new_from as varchar) as new_from,
            cast(late_from as varchar) as late_from
        from bounds
    {%- endset %}
{%- endif %}
{%- set windows = incremental_feature_windows(
    bounds_query if is_incremental() else none, history_windows
) %}

with

-- the labels as known now: the reported transactions (every other one is not reported)
reported_labels as (

    select
        transaction_id,
        fraud_reported_at,
        fraud_scenario
    from {{ ref('fct_transactions') }}
    where is_fraud_reported

),

transactions as (

    select
        transaction_id,
        event_ts,
        event_date,
        customer_id,
        account_id,
        counterparty_key,
        transaction_type,
        channel,
        direction,
        amount_brl,
        event_hour,
        is_night,
        is_weekend,
        state,
        device_id,
        status
    from {{ ref('fct_transactions') }}
    {%- if is_incremental() %}
        -- the days a frame of either set of recomputed rows reads (the shared history's
        -- totals are read apart, below)
        where {{ may_be_framed(windows, history_windows) }}
    {%- endif %}

),

{%- if is_incremental() %}

-- late arrivals: transactions of days already featured that are not featured yet
late_rows as (

    select
        late.customer_id,
        late.counterparty_key,
        late.device_id
    from {{ ref('fct_transactions') }} as late
    left join {{ this }} as featured
        on
            late.transaction_id = featured.transaction_id
            and featured.event_date >= date '{{ windows.late.recompute_from }}'
            and featured.event_date < date '{{ windows.new.recompute_from }}'
    where
        late.event_date >= date '{{ windows.late.recompute_from }}'
        and late.event_date < date '{{ windows.new.recompute_from }}'
        and featured.transaction_id is null

),

-- The partitions late data reaches, recomputed from late_from with the late windows; every
-- other partition keeps its stored features before new_from. Customers and devices: those of
-- the late rows. Counterparties: those of the late rows; those of the late customers' rows
-- (their unusual-state flags, in the counterparties' 1-day windows, follow the customers'
-- windows); those of frauds reported since late_from (the counterparty's fraud counts).
late_customers as (

    select distinct customer_id from late_rows

),

late_devices as (

    select distinct device_id from late_rows
    where device_id is not null

),

late_counterparties as (

    select counterparty_key from late_rows
    where counterparty_key is not null

    union

    select later.counterparty_key
    from {{ ref('fct_transactions') }} as later
    inner join late_customers on later.customer_id = late_customers.customer_id
    where
        later.event_date >= date '{{ windows.late.recompute_from }}'
        and later.counterparty_key is not null

    union

    select counterparty_key
    from {{ ref('fct_transactions') }}
    where
        is_fraud_reported
        -- (a fraud older than the longest window reaches no recomputed row)
        and event_date >= date '{{ windows.read_from[label_delay + 30] }}'
        and fraud_reported_at >= cast(date '{{ windows.late.recompute_from }}' as timestamp)
        and counterparty_key is not null

),

{%- endif %}

-- each customer's latest transaction before the recomputed days, for the time since the
-- previous one (none on a full build, which recomputes everything); a customer in the late
-- scope is recomputed from late_from
earlier_activity as (

    select
        customer_id,
        {%- if is_incremental() %}
        max(
            case when event_date < date '{{ windows.late.recompute_from }}' then event_ts end
        ) as last_event_ts_before_late,
        {%- endif %}
        max(event_ts) as last_event_ts
    {%- if is_incremental() %}
        from {{ this }}
        where event_date < date '{{ windows.new.recompute_from }}'
    {%- else %}
    from transactions
    where false
    {%- endif %}
    group by customer_id

),

{%- if is_incremental() %}

-- rows whose customer windows the run does not recompute (before new_from, or before late_from
-- in the late scope), down to the day before late_from: whether each was in a state unusual for
-- its customer, from the stored features (cust_same_state_share_30d is 0 exactly then), for the
-- counterparties' 1-day windows
stored_unusual_states as (

    select
        transaction_id,
        coalesce(cust_same_state_share_30d = 0, false) as is_unusual_state
    from {{ this }}
    where
        event_date >= date '{{ windows.read_from[1] }}'
        and event_date < date '{{ windows.new.recompute_from }}'

),

{%- endif %}

counterparty_first_seen as (

    select * from {{ ref('int_customer_counterparty_first_seen') }}
    {%- if is_incremental() %}
    -- (only first transactions among the rows read can match: first_event_ts is theirs)
    where first_event_ts >= cast(date '{{ windows.read_from[history_windows[-1]] }}' as timestamp)
    {%- endif %}

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
        and event_date >= date '{{ windows.read_from[label_delay + 30] }}'
    {%- endif %}

),

{%- if is_incremental() %}

-- whether each row's partitions are in the late scope, by `in`: its subquery side is always the
-- one hashed (a join may hash the rows instead: the late scope is small, the rows many)
scoped as (

    select
        transactions.*,
        coalesce(
            transactions.customer_id in (select customer_id from late_customers), false
        ) as customer_in_late_scope,
        coalesce(
            transactions.counterparty_key in (select counterparty_key from late_counterparties),
            false
        ) as counterparty_in_late_scope,
        coalesce(
            transactions.device_id in (select device_id from late_devices), false
        ) as device_in_late_scope
    from transactions

),

-- the rows some window reads: those a frame of their partitions' set holds (the first-time
-- joins below cost by the row)
framed_transactions as (

    select * from scoped
    where {{ is_framed(windows, late_scope_flags, history_windows) }}

),

{%- endif %}

-- the rows the windows read, with their first-time flags
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
        {%- for flag in late_scope_flags %}
        transactions.{{ flag }},
        {%- endfor %}
        device_first_seen.first_event_ts as device_first_event_ts,
        coalesce(transactions.status = 'declined', false) as is_declined,
        coalesce(
            counterparty_first_seen.first_transaction_id = transactions.transaction_id, false
        ) as is_first_time_counterparty,
        coalesce(
            device_first_seen.first_transaction_id = transactions.transaction_id, false
        ) as is_new_device
    from {{ 'framed_transactions' if is_incremental() else 'transactions' }} as transactions
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

-- the rows the customer's windows read (and the device's, whose rows are a customer's first
-- uses): everything on a full build; on an incremental run, for each set of recomputed rows
-- (every partition from new_from, the late scope's from late_from), the recomputed days, the
-- day before them (1-day and 1-hour windows) and the history before the shared part of each
-- of its long windows. The counterparty's windows read more (counterparty_framed).
customer_framed as (

    select * from enriched
    where {{ is_framed(windows, ['customer_in_late_scope', 'device_in_late_scope'], long_windows) }}

),

{%- if is_incremental() %}

-- the counterparties of the rows this run writes: the only partitions whose windows it needs
recomputed_counterparties as (

    select distinct counterparty_key
    from enriched
    where
        counterparty_key is not null
        and {{ is_recomputed(windows, late_scope_flags | join(' or ')) }}

),

-- The history every recomputed row's long windows hold whole, as totals per partition; each
-- total for both sets of recomputed rows (new_*, late_*: their shared days differ), a partition
-- taking its scope's (shared_total). Each reads the few columns it needs of fct_transactions'
-- shared days, never the framed rows' joins; the counterparty's, only the partitions written.

-- the first-time counterparties among the shared history's inbound rows, as enriched finds them
-- (a pair's first transaction is its one match)
shared_inbound_new_senders as (

    select
        shared_history.customer_id,
        {%- for tier in ['new', 'late'] %}
        sum(
            case when {{ is_shared_history_of_tier(windows, tier, 7) }} then 1 else 0 end
        ) as {{ tier }}_inbound_new_sender_count_7d{% if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ ref('fct_transactions') }} as shared_history
    inner join counterparty_first_seen
        on
            shared_history.customer_id = counterparty_first_seen.customer_id
            and shared_history.transaction_id = counterparty_first_seen.first_transaction_id
    where
        shared_history.direction = 'inbound'
        and {{ may_be_shared_history(windows, [7]) }}
    group by shared_history.customer_id

),

customer_history as (

    select
        shared_history.customer_id,
        {%- for tier in ['new', 'late'] %}
        {%- for days in long_windows %}
            {%- set in_shared = is_shared_history_of_tier(windows, tier, days) %}
            sum(case when {{ in_shared }} then 1 else 0 end) as {{ tier }}_tx_count_{{ days }}d,
            sum(case when {{ in_shared }} then shared_history.amount_brl else 0 end)
                as {{ tier }}_amount_sum_{{ days }}d,
        {%- endfor %}
            sum(
                case
                    when {{ is_shared_history_of_tier(windows, tier, 30) }}
                        then shared_history.amount_brl * shared_history.amount_brl
                    else 0
                end
            ) as {{ tier }}_amount_squares_30d,
            -- (the 7-day shared days lie within the 30-day ones: such a customer has a row here)
            coalesce(max(shared_inbound_new_senders.{{ tier }}_inbound_new_sender_count_7d), 0)
                as {{ tier }}_inbound_new_sender_count_7d{% if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ ref('fct_transactions') }} as shared_history
    left join shared_inbound_new_senders
        on shared_history.customer_id = shared_inbound_new_senders.customer_id
    where {{ may_be_shared_history(windows, [30]) }}
    group by shared_history.customer_id

),

customer_state_history as (

    select
        customer_id,
        state,
        {%- for tier in ['new', 'late'] %}
        sum(
            case when {{ is_shared_history_of_tier(windows, tier, 30) }} then 1 else 0 end
        ) as {{ tier }}_tx_count_30d{% if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ ref('fct_transactions') }} as shared_history
    where
        state is not null
        and {{ may_be_shared_history(windows, [30]) }}
    group by customer_id, state

),

amount_kind_history as (

    select
        customer_id,
        transaction_type,
        direction,
        {%- for tier in ['new', 'late'] %}
        max(
            case when {{ is_shared_history_of_tier(windows, tier, 30) }} then amount_brl end
        ) as {{ tier }}_max_amount_30d{% if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ ref('fct_transactions') }} as shared_history
    where {{ may_be_shared_history(windows, [30]) }}
    group by customer_id, transaction_type, direction

),

-- first uses of each device in the shared days: the first-seen pairs whose first transaction
-- is a shared row (enriched's is_new_device)
device_history as (

    select
        device_first_seen.device_id,
        {%- for tier in ['new', 'late'] %}
        sum(
            case when {{ is_shared_history_of_tier(windows, tier, 30) }} then 1 else 0 end
        ) as {{ tier }}_new_customers_30d{% if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ ref('fct_transactions') }} as shared_history
    inner join device_first_seen
        on
            shared_history.customer_id = device_first_seen.customer_id
            and shared_history.transaction_id = device_first_seen.first_transaction_id
    where {{ may_be_shared_history(windows, [30]) }}
    group by device_first_seen.device_id

),

-- the counterparty's windows reach further back than the customer's (the labelled past)
counterparty_history as (

    select
        counterparty_key,
        {%- for tier in ['new', 'late'] %}
        {%- for days in counterparty_long_windows %}
            sum(
                case when {{ is_shared_history_of_tier(windows, tier, days) }} then 1 else 0 end
            ) as {{ tier }}_tx_count_{{ days }}d{% if not (loop.last and tier == 'late') %},{% endif %}
        {%- endfor %}
        {%- endfor %}
    from {{ ref('fct_transactions') }} as shared_history
    where
        counterparty_key in (select counterparty_key from recomputed_counterparties)
        and {{ may_be_shared_history(windows, counterparty_long_windows) }}
    group by counterparty_key

),

{%- endif %}

-- sums stay in exact decimals so that any run computes the very same values; long windows
-- over the rows read are *_read, completed with the shared history below
windowed as (

    select
        *,
        {{ count_over_previous_days('customer_id', 1) }} as cust_tx_count_1d,
        {{ sum_over_previous_days('amount_brl', 'customer_id', 1) }} as cust_amount_sum_1d,
        {%- for days in long_windows %}
        {{ count_over_previous_days('customer_id', days, is_in_frames(windows, 'customer_in_late_scope', days)) }}
            as cust_tx_count_{{ days }}d_read,
        {{ sum_over_previous_days('amount_brl', 'customer_id', days, is_in_frames(windows, 'customer_in_late_scope', days)) }}
            as cust_amount_sum_{{ days }}d_read,
        {%- endfor %}
        {{ sum_over_previous_days('amount_brl * amount_brl', 'customer_id', 30, is_in_frames(windows, 'customer_in_late_scope', 30)) }}
            as cust_amount_squares_30d_read,
        {{ sum_over_previous_days('1', 'customer_id', 1, "direction = 'inbound'") }}
            as cust_inbound_count_1d,
        {{ sum_over_previous_days('amount_brl', 'customer_id', 1, "direction = 'inbound'") }}
            as cust_inbound_amount_1d,
        {{ sum_over_previous_days(
            '1', 'customer_id', 7,
            is_in_frames(windows, 'customer_in_late_scope', 7) ~ " and direction = 'inbound' and is_first_time_counterparty"
        ) }} as cust_inbound_new_sender_count_7d_read,
        {{ sum_over_previous_days(
            '1', 'customer_id', 1, "direction = 'inbound' and is_first_time_counterparty"
        ) }} as cust_inbound_new_sender_count_1d,
        {{ count_over_previous_hours('customer_id', 1) }} as cust_tx_count_1h,
        {{ sum_over_previous_hours('1', 'customer_id', 1, 'is_declined') }}
            as cust_declined_count_1h,
        {{ max_over_earlier_days(
            'amount_brl', 'customer_id, transaction_type, direction', 30, is_in_frames(windows, 'customer_in_late_scope', 30)
        ) }} as earlier_max_amount_30d_read,
        -- customers whose first use of the device falls in the window; the customer's own
        -- first use is taken out below
        {{ sum_over_previous_days(
            '1', device_partition, 30,
            is_in_frames(windows, 'device_in_late_scope', 30) ~ ' and is_new_device'
        ) }}
            as device_new_customers_30d_read,
        {{ count_over_previous_days('customer_id, ' ~ state_partition, 30, is_in_frames(windows, 'customer_in_late_scope', 30)) }}
            as cust_same_state_count_30d_read,
        {{ previous_event_ts('customer_id', condition=is_recomputed(windows, 'customer_in_late_scope')) }} as previous_event_ts_read
    from customer_framed

),

-- the rows with their full windows; the *_read parts are left here, so that the counterparty
-- windows below do not carry them
{%- set customer_read_columns = [
    'cust_tx_count_1d', 'cust_amount_sum_1d', 'cust_inbound_count_1d',
    'cust_inbound_amount_1d', 'cust_inbound_new_sender_count_1d', 'cust_tx_count_1h',
    'cust_declined_count_1h', 'previous_event_ts_read',
] %}
{#- customer_windowed's columns after the enriched ones and the flags, in its order -#}
{%- set customer_window_columns = customer_read_columns + [] %}
{%- for days in long_windows %}
{%- do customer_window_columns.extend(['cust_tx_count_' ~ days ~ 'd', 'cust_amount_sum_' ~ days ~ 'd']) %}
{%- endfor %}
{%- do customer_window_columns.extend([
    'cust_amount_squares_30d', 'cust_inbound_new_sender_count_7d', 'earlier_max_amount_30d',
    'device_new_customers_30d', 'cust_same_state_count_30d',
]) %}
customer_windowed as (

    select
        {%- for column in enriched_columns + late_scope_flags + customer_read_columns %}
        windowed.{{ column }},
        {%- endfor %}
        {%- for days in long_windows %}
            {{ plus_shared_history(
                'windowed.cust_tx_count_' ~ days ~ 'd_read',
                shared_total(customer_scope, 'customer_history', 'tx_count_' ~ days ~ 'd')
            ) }} as cust_tx_count_{{ days }}d,
            {{ plus_shared_history(
                'windowed.cust_amount_sum_' ~ days ~ 'd_read',
                shared_total(customer_scope, 'customer_history', 'amount_sum_' ~ days ~ 'd')
            ) }} as cust_amount_sum_{{ days }}d,
        {%- endfor %}
        {{ plus_shared_history(
            'windowed.cust_amount_squares_30d_read',
            shared_total(customer_scope, 'customer_history', 'amount_squares_30d')
        ) }} as cust_amount_squares_30d,
        {{ plus_shared_history(
            'windowed.cust_inbound_new_sender_count_7d_read',
            shared_total(customer_scope, 'customer_history', 'inbound_new_sender_count_7d')
        ) }} as cust_inbound_new_sender_count_7d,
        {{ max_with_shared_history(
            'windowed.earlier_max_amount_30d_read',
            shared_total(customer_scope, 'amount_kind_history', 'max_amount_30d')
        ) }} as earlier_max_amount_30d,
        {{ plus_shared_history(
            'windowed.device_new_customers_30d_read',
            shared_total(device_scope, 'device_history', 'new_customers_30d')
        ) }} as device_new_customers_30d,
        {{ plus_shared_history(
            'windowed.cust_same_state_count_30d_read',
            shared_total(customer_scope, 'customer_state_history', 'tx_count_30d')
        ) }} as cust_same_state_count_30d
    from windowed
    {%- if is_incremental() %}
        left join customer_history
            on windowed.customer_id = customer_history.customer_id
        left join customer_state_history
            on
                windowed.customer_id = customer_state_history.customer_id
                and windowed.state = customer_state_history.state
        left join device_history
            on windowed.device_id = device_history.device_id
        left join amount_kind_history
            on
                windowed.customer_id = amount_kind_history.customer_id
                and windowed.transaction_type = amount_kind_history.transaction_type
                and windowed.direction = amount_kind_history.direction
    {%- endif %}

),

-- a transaction in a state where its customer did nothing in the previous 30 days (but did
-- something elsewhere); on an incremental run, stored for the rows whose customer windows it
-- does not recompute
unusual_state as (

    select
        customer_windowed.*,
        {%- set computed_flag %}
            coalesce(
                customer_windowed.state is not null
                and customer_windowed.cust_tx_count_30d > 0
                and customer_windowed.cust_same_state_count_30d = 0,
                false
            )
        {%- endset %}
        {%- if is_incremental() %}
        case
            when {{ is_recomputed(windows, 'customer_windowed.customer_in_late_scope') }}
                then {{ computed_flag }}
            else coalesce(stored_unusual_states.is_unusual_state, {{ computed_flag }})
        end as is_unusual_state
        {%- else %}
        {{ computed_flag }} as is_unusual_state
        {%- endif %}
    from customer_windowed
    {%- if is_incremental() %}
        left join stored_unusual_states
            on customer_windowed.transaction_id = stored_unusual_states.transaction_id
    {%- endif %}

),

-- the rows the counterparty's windows read: the customer's, and on an incremental run the
-- further days of the counterparty's long windows (the labelled past) and the rows of
-- counterparties in the late scope whose customer and device are not. Those have no customer
-- windows (their customer features are the stored ones, or unused); their unusual-state flag
-- is the stored one, which the counterparties' 1-day windows read. An incremental run reads
-- only the partitions of the rows it writes.
{%- set in_written_partition = '(' ~ is_recomputed(windows, late_scope_flags | join(' or '))
    ~ ' or counterparty_key in (select counterparty_key from recomputed_counterparties))' %}
counterparty_framed as (

    select
        {%- for column in enriched_columns + late_scope_flags + customer_window_columns %}
        {{ column }},
        {%- endfor %}
        is_unusual_state
    from unusual_state
    {%- if is_incremental() %}
    where {{ in_written_partition }}

    union all

    select
        {%- for column in enriched_columns + late_scope_flags %}
        enriched.{{ column }},
        {%- endfor %}
        {%- for column in customer_window_columns %}
        null as {{ column }},
        {%- endfor %}
        coalesce(stored_unusual_states.is_unusual_state, false) as is_unusual_state
    from enriched
    left join stored_unusual_states
        on enriched.transaction_id = stored_unusual_states.transaction_id
    where
        {{ is_framed(windows, late_scope_flags, history_windows) }}
        and not {{ is_framed(windows, ['customer_in_late_scope', 'device_in_late_scope'], long_windows) }}
        and {{ in_written_partition | replace('counterparty_key in', 'enriched.counterparty_key in') }}
    {%- endif %}

),

-- the counterparty's windows, all in one pass over its partition
counterparty_windowed as (

    select
        *,
        {{ count_over_previous_days(counterparty_partition, 1) }} as cp_tx_count_1d,
        {%- for days in counterparty_long_windows %}
        {{ count_over_previous_days(
            counterparty_partition, days, is_in_frames(windows, 'counterparty_in_late_scope', days)
        ) }}
            as cp_tx_count_{{ days }}d_read,
        {%- endfor %}
        {{ sum_over_previous_days('1', counterparty_partition, 1, 'is_first_time_counterparty') }}
            as cp_new_customer_count_1d,
        {{ sum_over_previous_days('1', counterparty_partition, 1, 'is_unusual_state') }}
            as cp_unusual_state_count_1d
    from counterparty_framed

),

current_rows as (

    select
        counterparty_windowed.*,
        {%- for days in counterparty_long_windows %}
            {{ plus_shared_history(
                'counterparty_windowed.cp_tx_count_' ~ days ~ 'd_read',
                shared_total(counterparty_scope, 'counterparty_history', 'tx_count_' ~ days ~ 'd')
            ) }} as cp_tx_count_{{ days }}d,
        {%- endfor %}
        coalesce(
            counterparty_windowed.previous_event_ts_read,
            {%- if is_incremental() %}
            case
                when counterparty_windowed.customer_in_late_scope
                    then earlier_activity.last_event_ts_before_late
                else earlier_activity.last_event_ts
            end
            {%- else %}
            earlier_activity.last_event_ts
            {%- endif %}
        ) as previous_event_ts
    from counterparty_windowed
    left join earlier_activity
        on counterparty_windowed.customer_id = earlier_activity.customer_id
    {%- if is_incremental() %}
        left join counterparty_history
            on counterparty_windowed.counterparty_key = counterparty_history.counterparty_key
        where {{ is_recomputed(windows, late_scope_flags | join(' or ')) }}
    {%- endif %}

),

-- the counterparty's frauds reported by event_ts: in the previous 30 days, and in each window
-- over the labelled past
counterparty_frauds as (

    select
        current_rows.transaction_id,
        sum(
            case
                when {{ is_within_previous_days('frauds.event_ts', 'current_rows.event_ts', 30) }}
                    then 1
                else 0
            end
        ) as cp_fraud_reported_30d,
    {%- for days in labelled_windows %}
    sum(
        case
            when
                not {{ is_within_previous_days(
                            'frauds.event_ts', 'current_rows.event_ts', label_delay
                        ) }}
                and {{ is_within_previous_days(
                            'frauds.event_ts', 'current_rows.event_ts', label_delay + days
                        ) }}
                then 1
            else 0
        end
    ) as cp_labelled_fraud_count_{{ days }}d
    {%- if not loop.last %},{% endif %}
    {%- endfor %}
    from current_rows
    inner join frauds
        on
            current_rows.counterparty_key = frauds.counterparty_key
            and current_rows.transaction_id != frauds.transaction_id
            and current_rows.event_ts >= frauds.fraud_reported_at
            and {{ is_within_previous_days(
                'frauds.event_ts', 'current_rows.event_ts', [30, label_delay + 30] | max
            ) }}
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
        cast(current_rows.cust_amount_sum_{{ days }}d as double)
        / nullif(current_rows.cust_tx_count_{{ days }}d, 0) as cust_amount_avg_{{ days }}d,
        cast(current_rows.amount_brl as double)
        / (
            cast(current_rows.cust_amount_sum_{{ days }}d as double)
            / nullif(current_rows.cust_tx_count_{{ days }}d, 0)
        ) as amount_ratio_to_avg_{{ days }}d,
        {%- endfor %}
        cast(
            {{ dbt.datediff('current_rows.previous_event_ts', 'current_rows.event_ts', 'second') }}
            as bigint
        ) as cust_seconds_since_prev_tx,
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
        cast(coalesce(counterparty_frauds.cp_fraud_reported_30d, 0) as bigint) as cp_fraud_reported_30d,
        -- the labelled past: its transactions and the share of them reported as fraud by now
        {%- for days in labelled_windows %}
        cast(
            current_rows.cp_tx_count_{{ label_delay + days }}d
            - current_rows.cp_tx_count_{{ label_delay }}d
            as bigint
        ) as cp_labelled_tx_count_{{ days }}d,
        cast(coalesce(counterparty_frauds.cp_labelled_fraud_count_{{ days }}d, 0) as double)
        / nullif(
            current_rows.cp_tx_count_{{ label_delay + days }}d
            - current_rows.cp_tx_count_{{ label_delay }}d,
            0
        ) as cp_labelled_fraud_rate_{{ days }}d,
        {%- endfor %}

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
        {%- for flag in late_scope_flags %}
        current_rows.{{ flag }},
        {%- endfor %}
        -- mule: new senders within the day
        cast(
            current_rows.cust_inbound_new_sender_count_1d as bigint
        ) as cust_inbound_new_sender_count_1d
    from current_rows
    left join counterparty_frauds
        on current_rows.transaction_id = counterparty_frauds.transaction_id

),

{%- if is_incremental() %}

-- the rows recomputed before new_from (the late scope) hold exact features only over the
-- partitions in the late scope: each feature comes from its partition's computation if that is
-- in the scope, else from the stored row (row-level features are the same either way)
{%- set feature_scopes = {} %}
{%- for column in feature_columns %}
    {%- if column.startswith('cp_') %}
        {%- do feature_scopes.update({column: 'counterparty_in_late_scope'}) %}
    {%- elif column.startswith('device_') %}
        {%- do feature_scopes.update({column: 'device_in_late_scope'}) %}
    {%- else %}
        {%- do feature_scopes.update({column: 'customer_in_late_scope'}) %}
    {%- endif %}
{%- endfor %}
stored_in_late_scope as (

    select * from {{ this }}
    where
        event_date >= date '{{ windows.late.recompute_from }}'
        and event_date < date '{{ windows.new.recompute_from }}'

),

{%- endif %}

rows_to_write as (

    {%- if not is_incremental() %}
    select
    {%- for column in key_columns + feature_columns %}
        {{ column }}{% if not loop.last %},{% endif %}
    {%- endfor %}
    from computed
    {%- else %}
    -- the recomputed rows, and the stored rows between late_from and new_from whose label changed
    select
        {%- for column in key_columns %}
        case
            when computed.transaction_id is null then stored.{{ column }} else computed.{{ column }}
        end as {{ column }},
        {%- endfor %}
        {%- for column in feature_columns %}
        case
            when
                computed.transaction_id is not null
                and (stored.transaction_id is null or computed.{{ feature_scopes[column] }})
                then computed.{{ column }}
            else stored.{{ column }}
        end as {{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from computed
    full outer join stored_in_late_scope as stored
        on computed.transaction_id = stored.transaction_id
    left join reported_labels as labels
        on stored.transaction_id = labels.transaction_id
    where computed.transaction_id is not null or ({{ label_changed }})

    union all

    -- older rows whose label changed: stored features, label refreshed in final
    select
        {%- for column in key_columns + feature_columns %}
            stored.{{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ this }} as stored
    left join reported_labels as labels
        on stored.transaction_id = labels.transaction_id
    where
        stored.event_date < date '{{ windows.late.recompute_from }}'
        and ({{ label_changed }})
    {%- endif %}

),

final as (

    select
        {%- for column in key_columns %}
        rows_to_write.{{ column }},
        {%- endfor %}
        labels.transaction_id is not null as label_is_fraud,
        labels.fraud_reported_at as label_reported_at,
        labels.fraud_scenario as label_scenario,
        {%- for column in feature_columns %}
        rows_to_write.{{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from rows_to_write
    left join reported_labels as labels
        on rows_to_write.transaction_id = labels.transaction_id

)

select * from final
