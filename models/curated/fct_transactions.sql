-- Every accepted transaction with its calendar attributes and its fraud label as known so far.
-- On Athena an Iceberg table by event day: every analysis filters on event_date.
--
-- Incremental: a row depends only on its own processed transaction, its own fraud label and
-- the reference seeds. A run recomputes the transactions ingested since the last stored
-- ingestion day minus var('lookback_days') (the days the processed layer re-reads: new days
-- and files that land late) and re-labels stored rows whose label changed since (a fraud
-- report arrives days to weeks after the transaction): their other columns are kept as
-- stored, the label columns come from int_fraud_labels like every other row's. After a
-- change to a seed it reads (transaction_types, mcc_groups, br_states), run --full-refresh.
{{ config(
    materialized='incremental',
    incremental_strategy=incremental_strategy(),
    unique_key='transaction_id',
    table_type='iceberg',
    partitioned_by=athena_partitioned_by(['day(event_date)']),
    on_schema_change='fail'
) }}

{%- set described_columns = [
    'transaction_id', 'event_ts', 'event_date', 'event_hour', 'iso_day_of_week', 'is_weekend',
    'is_night', 'account_id', 'customer_id', 'transaction_type', 'is_card_payment', 'channel',
    'direction', 'amount_brl', 'counterparty_key', 'merchant_category_code', 'mcc_group',
    'device_id', 'city', 'state', 'region', 'status', 'is_approved', 'ingestion_date',
    'arrival_delay_days',
] %}

{#- Incremental runs: the first ingestion day to recompute, as a literal date computed before
    the run (on Athena it prunes the partitions of the processed table read). -#}
{%- if is_incremental() %}
    {%- set bounds_query %}
        select
            cast(
                coalesce(
                    cast({{ dbt.dateadd('day', -1 * var('lookback_days'), 'max(ingestion_date)') }} as date),
                    date '1900-01-01'
                ) as varchar
            ) as recompute_from
        from {{ this }}
    {%- endset %}
    {%- set recompute_from = query_first_row(
        bounds_query, {'recompute_from': '9999-12-31'}
    )['recompute_from'] %}
{%- endif %}

with

transactions as (

    select * from {{ ref('stg_transactions') }}
    {%- if is_incremental() %}
        where ingestion_date >= date '{{ recompute_from }}'
    {%- endif %}

),

labels as (

    select * from {{ ref('int_fraud_labels') }}

),

transaction_types as (

    select * from {{ ref('transaction_types') }}

),

mcc_groups as (

    select * from {{ ref('mcc_groups') }}

),

states as (

    select * from {{ ref('br_states') }}

),

described as (

    select
        transactions.transaction_id,
        transactions.event_ts,
        transactions.event_date,
        cast(extract(hour from transactions.event_ts) as integer) as event_hour,
        cast({{ iso_day_of_week('transactions.event_date') }} as integer) as iso_day_of_week,
        {{ iso_day_of_week('transactions.event_date') }} in (6, 7) as is_weekend,
        {{ is_night('extract(hour from transactions.event_ts)') }} as is_night,
        transactions.account_id,
        transactions.customer_id,
        transactions.transaction_type,
        transaction_types.is_card_payment,
        transactions.channel,
        transactions.direction,
        transactions.amount_brl,
        -- a person's PIX key (CPF, phone, e-mail) or bank account is personal data: curated
        -- keeps only its salted hash, still one value per counterparty
        case
            when transaction_types.counterparty_is_personal
                then {{ hash_pii('transactions.counterparty_key') }}
            else transactions.counterparty_key
        end as counterparty_key,
        cast(transactions.merchant_category_code as varchar) as merchant_category_code,
        mcc_groups.mcc_group,
        transactions.device_id,
        transactions.city,
        transactions.state,
        states.region,
        transactions.status,
        transactions.status = 'approved' as is_approved,
        transactions.ingestion_date,
        cast(
            {{ dbt.datediff('transactions.event_date', 'transactions.ingestion_date', 'day') }}
            as integer
        ) as arrival_delay_days
    from transactions
    left join transaction_types
        on transactions.transaction_type = transaction_types.transaction_type
    left join mcc_groups
        on transactions.merchant_category_code = cast(mcc_groups.merchant_category_code as varchar)
    left join states
        on transactions.state = states.state_code

),

rows_to_write as (

    select * from described
    {%- if is_incremental() %}

        union all

        -- older rows whose label changed: stored columns, label refreshed in final
        select
            {%- for column in described_columns %}
                stored.{{ column }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        from {{ this }} as stored
        left join labels
            on stored.transaction_id = labels.transaction_id
        where
            stored.ingestion_date < date '{{ recompute_from }}'
            and (
                stored.is_fraud_reported != (labels.transaction_id is not null)
                or stored.fraud_scenario is distinct from labels.fraud_scenario
                or stored.fraud_reported_at is distinct from labels.first_reported_at
            )
    {%- endif %}

),

final as (

    select
        {%- for column in described_columns %}
            rows_to_write.{{ column }},
        {%- endfor %}
        labels.transaction_id is not null as is_fraud_reported,
        labels.fraud_scenario,
        labels.first_reported_at as fraud_reported_at,
        cast(
            {{ dbt.datediff('rows_to_write.event_date', 'cast(labels.first_reported_at as date)', 'day') }}
            as integer
        ) as days_to_report
    from rows_to_write
    left join labels
        on rows_to_write.transaction_id = labels.transaction_id

)

select * from final
