-- Every accepted transaction with its calendar attributes and its fraud label as known so far.
-- On Athena an Iceberg table by event day: every analysis filters on event_date.
{{ config(partitioned_by=athena_partitioned_by(['day(event_date)'])) }}

with

transactions as (

    select * from {{ ref('stg_transactions') }}

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

final as (

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
        ) as arrival_delay_days,
        labels.transaction_id is not null as is_fraud_reported,
        labels.fraud_scenario,
        labels.first_reported_at as fraud_reported_at,
        cast(
            {{ dbt.datediff('transactions.event_date', 'cast(labels.first_reported_at as date)', 'day') }}
            as integer
        ) as days_to_report
    from transactions
    left join labels
        on transactions.transaction_id = labels.transaction_id
    left join transaction_types
        on transactions.transaction_type = transaction_types.transaction_type
    left join mcc_groups
        on transactions.merchant_category_code = cast(mcc_groups.merchant_category_code as varchar)
    left join states
        on transactions.state = states.state_code

)

select * from final
