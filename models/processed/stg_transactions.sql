{{ config(materialized='view') }}

with

triaged as (

    select * from {{ ref('stg_transactions_triaged') }}
    where disposition = 'accepted'

),

final as (

    select
        transaction_id,
        account_id,
        customer_id,
        event_ts,
        cast(event_ts as date) as event_date,
        transaction_type,
        channel,
        direction,
        amount_brl,
        counterparty_key,
        merchant_category_code,
        device_id,
        city,
        state,
        status,
        ingestion_date,
        ingested_at,
        source_file
    from triaged

)

select * from final
