{#- The first CTEs of every stg_<feed>_triaged model, ending with `source`: the feed's raw rows
    (a typed, empty stand-in until the feed's first file lands: source_or_empty), on
    incremental runs only the re-read ingestion days (incremental_ingestion_filter), each with
    `triage_pass` = 'rows'; then, again with triage_pass = 'ranking', the rows whose
    `record_id` (the raw column that identifies a record: its trimmed value is part of
    record_key) is delivered more than once in them. Only those can be duplicates; triage()
    ranks their valid deliveries apart from the pass over every row, so that each pass reads
    the rows it needs instead of both reading one stored copy of every typed row. -#}
{% macro triaged_source(feed, record_id) -%}
{#- materialized on incremental runs, so that only the re-read partitions are opened; on a
    full build read again by each pass (a stored copy of every raw row costs more) -#}
raw_rows as {% if is_incremental() %}{{ materialized_cte() }}{% else %}{{ inlined_cte() }}{% endif %} (

    select * from {{ source_or_empty(source('raw', feed)) }}
    {{ incremental_ingestion_filter() }}

),

repeated_record_ids as (

    select nullif(trim({{ record_id }}), '') as record_id
    from raw_rows
    group by nullif(trim({{ record_id }}), '')
    having count(*) > 1

),

source as {{ inlined_cte() }} (

    select
        raw_rows.*,
        'rows' as triage_pass
    from raw_rows

    union all

    select
        raw_rows.*,
        'ranking' as triage_pass
    from raw_rows
    where nullif(trim(raw_rows.{{ record_id }}), '') in (
        select repeated_record_ids.record_id from repeated_record_ids
    )

)
{%- endmacro %}
