-- The newest accepted version of each customer: what the SCD2 snapshot captures each run.
with

versions as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by updated_at desc, ingested_at desc, source_file desc
        ) as version_rank
    from {{ ref('stg_customers') }}

)

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
    city
from versions
where version_rank = 1
