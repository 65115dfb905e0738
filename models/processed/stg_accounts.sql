{{ config(materialized='view') }}

with

triaged as (

    select * from {{ ref('stg_accounts_triaged') }}
    where disposition = 'accepted'

),

final as (

    select
        account_id,
        updated_at,
        customer_id,
        account_type,
        opened_date,
        account_status,
        credit_limit_brl,
        ingestion_date,
        ingested_at,
        source_file
    from triaged

)

select * from final
