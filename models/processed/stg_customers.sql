{{ config(materialized='view') }}

with

triaged as (

    select * from {{ ref('stg_customers_triaged') }}
    where disposition = 'accepted'

),

final as (

    select
        customer_id,
        updated_at,
        full_name,
        cpf_digits,
        birth_date,
        segment,
        monthly_income_brl,
        risk_rating,
        onboarding_date,
        state,
        city,
        ingestion_date,
        ingested_at,
        source_file
    from triaged

)

select * from final
