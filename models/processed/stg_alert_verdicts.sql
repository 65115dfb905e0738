{{ config(materialized='view') }}

with

triaged as (

    select * from {{ ref('stg_alert_verdicts_triaged') }}
    where disposition = 'accepted'

),

final as (

    select
        verdict_id,
        transaction_id,
        verdict,
        investigator,
        decided_at,
        score_date,
        model_version,
        ingestion_date,
        ingested_at,
        source_file
    from triaged

)

select * from final
