{{ triaged_model_config() }}

with

{{ triaged_source('accounts', record_id='account_id') }},

renamed as {{ triaged_cte() }} (

    select
        {{ raw_row_lineage('source') }},

        nullif(trim(account_id), '') as account_id,
        nullif(trim(customer_id), '') as customer_id,
        lower(trim(account_type)) as account_type,
        {{ parse_date('opened_date') }} as opened_date,
        lower(trim(status)) as account_status,
        cast(credit_limit as decimal(18, 2)) as credit_limit_brl,
        {{ parse_timestamp('updated_at') }} as updated_at,

        updated_at as raw_updated_at

    from source

),

validated as {{ triaged_cte() }} (

    select
        *,
        account_id || '@' || coalesce(raw_updated_at, '') as record_key,
        case
            when account_id is null then 'missing_account_id'
            when customer_id is null then 'missing_customer_id'
            when updated_at is null then 'unparseable_updated_at'
            when not {{ in_seed('account_type', 'account_types') }} then 'unknown_account_type'
        end as rejection_reason
    from renamed

),

{{ triage('validated', 'ingested_at, source_file, source_row') }}

{{ triaged_select([
    'account_id',
    'customer_id',
    'account_type',
    'opened_date',
    'account_status',
    'credit_limit_brl',
    'updated_at',
    'raw_updated_at'
]) }}
