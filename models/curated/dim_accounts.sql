-- Current accounts with their owner's segment.
with

accounts as (

    select * from {{ ref('int_accounts_latest') }}

),

as_of as (

    select * from {{ ref('int_lake_as_of') }}

),

final as (

    select
        accounts.account_id,
        accounts.customer_id,
        accounts.account_type,
        accounts.account_status,
        accounts.opened_date,
        cast(
            {{ dbt.datediff('accounts.opened_date', 'as_of.as_of_date', 'day') }} as integer
        ) as account_age_days,
        accounts.credit_limit_brl,
        accounts.updated_at
    from accounts
    cross join as_of

)

select * from final
