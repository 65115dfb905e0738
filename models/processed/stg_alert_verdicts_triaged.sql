{{ triaged_model_config() }}

with

{{ triaged_source('alert_verdicts', record_id='verdict_id') }},

renamed as {{ triaged_cte() }} (

    select
        {{ raw_row_lineage('source') }},

        nullif(trim(source.verdict_id), '') as verdict_id,
        nullif(trim(source.transaction_id), '') as transaction_id,
        lower(trim(source.verdict)) as verdict,
        nullif(trim(source.investigator), '') as investigator,
        {{ parse_timestamp('source.decided_at') }} as decided_at,
        {{ parse_date('source.score_date') }} as score_date,
        nullif(trim(source.model_version), '') as model_version,

        source.decided_at as raw_decided_at

    from source

),

validated as {{ triaged_cte() }} (

    select
        *,
        verdict_id as record_key,
        case
            when verdict_id is null then 'missing_verdict_id'
            when transaction_id is null then 'missing_transaction_id'
            when not {{ in_seed('verdict', 'alert_verdicts') }} then 'unknown_verdict'
            when decided_at is null then 'unparseable_decided_at'
        end as rejection_reason
    from renamed

),

{{ triage('validated', 'ingested_at, source_file, source_row') }}

{{ triaged_select([
    'verdict_id',
    'transaction_id',
    'verdict',
    'investigator',
    'decided_at',
    'score_date',
    'model_version',
    'raw_decided_at'
]) }}
