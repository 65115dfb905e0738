-- The newest accepted version of each account.
with

versions as (

    select
        *,
        row_number() over (
            partition by account_id
            order by updated_at desc, ingested_at desc, source_file desc
        ) as version_rank
    from {{ ref('stg_accounts') }}

)

select
    account_id,
    updated_at,
    customer_id,
    account_type,
    opened_date,
    account_status,
    credit_limit_brl
from versions
where version_rank = 1
