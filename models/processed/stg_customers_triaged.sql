{{ triaged_model_config() }}

with

{{ triaged_source('customers', record_id='customer_id') }},

segments as (

    select segment from {{ ref('customer_segments') }}

),

renamed as {{ triaged_cte() }} (

    select
        {{ raw_row_lineage('source') }},

        nullif(trim(source.customer_id), '') as customer_id,
        trim(source.full_name) as full_name,
        {{ regexp_remove('source.cpf', '[^0-9]') }} as cpf_digits,
        {{ parse_date('source.birth_date') }} as birth_date,
        segments.segment,
        cast(source.monthly_income as decimal(18, 2)) as monthly_income_brl,
        upper(trim(source.risk_rating)) as risk_rating,
        {{ parse_date('source.onboarding_date') }} as onboarding_date,
        -- address is a nested object in the raw JSON
        upper(trim(source.address.state)) as state,  -- noqa: RF01
        trim(source.address.city) as city,  -- noqa: RF01
        {{ parse_timestamp('source.updated_at') }} as updated_at,

        source.cpf as raw_cpf,
        source.segment as raw_segment,
        source.updated_at as raw_updated_at

    from source
    left join segments
        on lower(trim(source.segment)) = segments.segment

),

validated as {{ triaged_cte() }} (

    select
        *,
        customer_id || '@' || coalesce(raw_updated_at, '') as record_key,
        case
            when customer_id is null then 'missing_customer_id'
            -- a CPF is optional (imported data may not carry one), but never invalid
            when nullif(cpf_digits, '') is not null and not {{ is_valid_cpf('cpf_digits') }}
                then 'invalid_cpf'
            when updated_at is null then 'unparseable_updated_at'
            when segment is null then 'unknown_segment'
        end as rejection_reason
    from renamed

),

{{ triage('validated', 'ingested_at, source_file, source_row') }}

{{ triaged_select([
    'customer_id',
    'full_name',
    'cpf_digits',
    'birth_date',
    'segment',
    'monthly_income_brl',
    'risk_rating',
    'onboarding_date',
    'state',
    'city',
    'updated_at',
    'raw_cpf',
    'raw_segment',
    'raw_updated_at'
]) }}
