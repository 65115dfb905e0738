{#- The processed layer's one rule for raw rows: every row is accepted, a duplicate or rejected.

    incremental_ingestion_filter(): on incremental runs, read only the ingestion partitions from
    the last processed day (minus var('lookback_days'), for files that landed late in a day
    already processed) onwards. A first run reads everything, and so does a run whose table
    is still empty (a feed that had delivered nothing yet).

    triage(validated, order_by): given a CTE whose rows carry `record_key` (what makes two
    deliveries the same record), `rejection_reason` (null when valid) and `ingestion_date`, adds
    `disposition`. Among valid rows with the same record_key the first delivery (by order_by) is
    accepted and later ones are duplicates, including re-deliveries of a record accepted by an
    earlier run. Only the rows of the ranking pass (triaged_source: the records delivered more
    than once) are ranked, and their ranks joined by `raw_row_key` (unique per raw row) to the
    pass over every row: a window over every row, all its columns along, was half the model,
    and so were three reads of one stored copy of every typed row. A valid row always has a
    record_key (the models reject rows without one).

    triaged_cte(): the keyword for a triaged model's row-by-row CTEs (renamed, validated),
    which both passes read: inlined on a full build, so that the ranking pass's filter reaches
    the raw read and only the repeated records are typed twice; on incremental runs, a few
    days of rows, left to the engine (DuckDB stores them once). -#}
{% macro triaged_cte() -%}
    {%- if not is_incremental() %}{{ inlined_cte() }}{% endif -%}
{%- endmacro %}

{% macro ingestion_window_start() -%}
    {#- A literal date, computed before the model's query: with a bound from a subquery,
        DuckDB opens every raw partition (it prunes hive partitions only on constants). A
        feed whose table is still empty (nothing delivered before, e.g. the first alert
        verdict) has no last day: read everything. -#}
    {%- set bounds_query -%}
        select cast(coalesce(
            {{ dbt.dateadd('day', -1 * var('lookback_days'), 'max(processed.ingestion_date)') }},
            cast('1900-01-01' as date)
        ) as varchar) as window_start
        from {{ this }} as processed
    {%- endset -%}
    {%- set bounds = query_first_row(bounds_query, {'window_start': '1900-01-01'}) -%}
    date '{{ bounds['window_start'] }}'
{%- endmacro %}

{% macro incremental_ingestion_filter() -%}
    {%- if is_incremental() %}
    where {{ partition_date() }} >= {{ ingestion_window_start() }}
    {%- endif %}
{%- endmacro %}

{% macro triage(validated, order_by) -%}
    ranked as (
        select
            validated.raw_row_key,
            row_number() over (
                partition by validated.record_key
                order by {{ order_by }}
            ) as delivery_rank
        from {{ validated }} as validated
        where
            validated.triage_pass = 'ranking'
            and validated.rejection_reason is null
    ),

    {% if is_incremental() -%}
    -- the keys of this run's valid rows that an earlier run accepted (a semi-join: a distinct
    -- over every key ever accepted grows with the history)
    accepted_earlier as (
        select distinct earlier.record_key
        from {{ this }} as earlier
        inner join (
            select distinct record_key
            from {{ validated }}
            where rejection_reason is null and triage_pass = 'rows'
        ) as current_keys
            on earlier.record_key = current_keys.record_key
        where
            earlier.disposition = 'accepted'
            -- before the re-read days (their rows are triaged again here)
            and earlier.ingestion_date < (
                select min(ingestion_date) from {{ validated }} where triage_pass = 'rows'
            )
    ),
    {%- endif %}

    triaged as (
        select
            validated.*,
            case
                when validated.rejection_reason is not null then 'rejected'
                when ranked.delivery_rank > 1 then 'duplicate'
                {% if is_incremental() -%}
                when accepted_earlier.record_key is not null then 'duplicate'
                {%- endif %}
                else 'accepted'
            end as disposition
        from {{ validated }} as validated
        left join ranked
            on validated.raw_row_key = ranked.raw_row_key
        {% if is_incremental() -%}
        left join accepted_earlier
            on validated.record_key = accepted_earlier.record_key
        {%- endif %}
        where validated.triage_pass = 'rows'
    )
{%- endmacro %}

{#- The lineage columns every triaged row carries, from the raw layer's ingestion metadata,
    and its triage pass (triaged_source), which triaged_select leaves out. -#}
{% macro raw_row_lineage(relation='source') -%}
    {{ relation }}.triage_pass,
        {{ relation }}._source_file || '#' || cast({{ relation }}._source_row as varchar) as raw_row_key,
        {{ relation }}._source_file as source_file,
        {{ relation }}._source_row as source_row,
        {{ cast_table_timestamp(relation ~ '._ingested_at') }} as ingested_at,
        {{ partition_date(relation ~ '.year', relation ~ '.month', relation ~ '.day') }} as ingestion_date
{%- endmacro %}
