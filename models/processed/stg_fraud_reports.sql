{{ config(materialized='view') }}

with

triaged as (

    select * from {{ ref('stg_fraud_reports_triaged') }}
    where disposition = 'accepted'

),

final as (

    select
        report_id,
        transaction_id,
        reported_at,
        scenario,
        report_channel,
        ingestion_date,
        ingested_at,
        source_file
    from triaged

)

select * from final
