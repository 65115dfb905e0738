{{ triaged_model_config() }}

with

{{ triaged_source('transactions', record_id='transaction_id') }},

type_aliases as (

    select
        raw_value,
        canonical_value
    from {{ ref('value_aliases') }}
    where domain = 'transaction_type'

),

channel_aliases as (

    select
        raw_value,
        canonical_value
    from {{ ref('value_aliases') }}
    where domain = 'channel'

),

renamed as {{ triaged_cte() }} (

    select
        {{ raw_row_lineage('source') }},

        nullif(trim(source.transaction_id), '') as transaction_id,
        nullif(trim(source.account_id), '') as account_id,
        nullif(trim(source.customer_id), '') as customer_id,
        {{ parse_timestamp('trim(source.event_ts)') }} as event_ts,
        type_aliases.canonical_value as transaction_type,
        channel_aliases.canonical_value as channel,
        lower(trim(source.direction)) as direction,
        {{ try_cast('trim(source.amount)', 'decimal(18, 2)') }} as amount_brl,
        nullif(trim(source.counterparty_key), '') as counterparty_key,
        nullif(trim(source.merchant_category_code), '') as merchant_category_code,
        nullif(trim(source.device_id), '') as device_id,
        nullif(trim(source.city), '') as city,
        upper(nullif(trim(source.state), '')) as state,
        lower(trim(source.status)) as status,

        -- as delivered, for rejected-row forensics
        source.event_ts as raw_event_ts,
        source.amount as raw_amount,
        source.transaction_type as raw_transaction_type,
        source.channel as raw_channel

    from source
    left join type_aliases
        on {{ normalize_key('source.transaction_type') }} = type_aliases.raw_value
    left join channel_aliases
        on {{ normalize_key('source.channel') }} = channel_aliases.raw_value

),

validated as {{ triaged_cte() }} (

    select
        *,
        transaction_id as record_key,
        case
            when transaction_id is null then 'missing_transaction_id'
            when account_id is null then 'missing_account_id'
            when customer_id is null then 'missing_customer_id'
            when nullif(trim(raw_event_ts), '') is null then 'missing_event_ts'
            when event_ts is null then 'unparseable_event_ts'
            when nullif(trim(raw_amount), '') is null then 'missing_amount'
            when amount_brl is null then 'unparseable_amount'
            when amount_brl <= 0 then 'non_positive_amount'
            when transaction_type is null then 'unknown_transaction_type'
            when channel is null then 'unknown_channel'
            when not {{ in_seed('direction', 'transaction_directions') }} then 'unknown_direction'
            when not {{ in_seed('status', 'transaction_statuses') }} then 'unknown_status'
        end as rejection_reason
    from renamed

),

{{ triage('validated', 'ingested_at, source_file, source_row') }}

{{ triaged_select([
    'transaction_id',
    'account_id',
    'customer_id',
    'event_ts',
    'transaction_type',
    'channel',
    'direction',
    'amount_brl',
    'counterparty_key',
    'merchant_category_code',
    'device_id',
    'city',
    'state',
    'status',
    'raw_event_ts',
    'raw_amount',
    'raw_transaction_type',
    'raw_channel'
]) }}
