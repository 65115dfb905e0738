-- Current customers, PII-free: CPF hashed with a salt, names reduced to initials.
with

current_versions as (

    select * from {{ ref('customers_snapshot') }}
    where dbt_valid_to is null

),

versions as (

    select
        customer_id,
        count(*) as version_count
    from {{ ref('customers_snapshot') }}
    group by customer_id

),

states as (

    select * from {{ ref('br_states') }}

),

segments as (

    select * from {{ ref('customer_segments') }}

),

as_of as (

    select * from {{ ref('int_lake_as_of') }}

),

final as (

    select
        current_versions.customer_id,
        {{ hash_pii('current_versions.cpf_digits') }} as cpf_hash,
        {{ mask_name('current_versions.full_name') }} as name_masked,
        cast(extract(year from current_versions.birth_date) as integer) as birth_year,
        {{ age_band(dbt.datediff('current_versions.birth_date', 'as_of.as_of_date', 'year')) }}
            as age_band,
        current_versions.segment,
        segments.is_business,
        current_versions.monthly_income_brl,
        {{ income_band('current_versions.monthly_income_brl') }} as income_band,
        current_versions.risk_rating,
        current_versions.state,
        coalesce(states.region, 'unknown') as region,
        current_versions.city,
        current_versions.onboarding_date,
        cast(
            {{ dbt.datediff('current_versions.onboarding_date', 'as_of.as_of_date', 'day') }}
            as integer
        ) as tenure_days,
        current_versions.updated_at,
        {{ cast_table_timestamp('current_versions.dbt_valid_from') }} as version_valid_from,
        cast(versions.version_count as integer) as version_count
    from current_versions
    cross join as_of
    inner join versions
        on current_versions.customer_id = versions.customer_id
    left join states
        on current_versions.state = states.state_code
    left join segments
        on current_versions.segment = segments.segment

)

select * from final
