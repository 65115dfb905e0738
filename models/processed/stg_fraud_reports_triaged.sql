{{ triaged_model_config() }}

with

{{ triaged_source('fraud_reports', record_id='report_id') }},

scenarios as (

    select scenario from {{ ref('fraud_scenarios') }}

),

renamed as {{ triaged_cte() }} (

    select
        {{ raw_row_lineage('source') }},

        nullif(trim(source.report_id), '') as report_id,
        nullif(trim(source.transaction_id), '') as transaction_id,
        {{ parse_timestamp('source.reported_at') }} as reported_at,
        scenarios.scenario,
        lower(trim(source.report_channel)) as report_channel,

        source.reported_at as raw_reported_at,
        source.scenario as raw_scenario

    from source
    left join scenarios
        on lower(trim(source.scenario)) = scenarios.scenario

),

validated as {{ triaged_cte() }} (

    select
        *,
        report_id as record_key,
        case
            when report_id is null then 'missing_report_id'
            when transaction_id is null then 'missing_transaction_id'
            when reported_at is null then 'unparseable_reported_at'
            when scenario is null then 'unknown_scenario'
        end as rejection_reason
    from renamed

),

{{ triage('validated', 'ingested_at, source_file, source_row') }}

{{ triaged_select([
    'report_id',
    'transaction_id',
    'reported_at',
    'scenario',
    'report_channel',
    'raw_reported_at',
    'raw_scenario'
]) }}
