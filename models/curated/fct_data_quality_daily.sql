-- The raw layer's quality per feed and ingestion day: how many raw rows landed and what the
-- processed layer made of them (accepted, duplicate, rejected with the reason), and when the
-- day's files landed. Counts only, no row-level data: the dashboard's rows per layer,
-- rejections over time and source freshness read it from the published marts.
with

triaged as (

    {%- for feed in raw_feeds() %}
        select
            '{{ feed }}' as feed,
            ingestion_date,
            disposition,
            rejection_reason,
            ingested_at
        from {{ ref('stg_' ~ feed ~ '_triaged') }}
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}

),

daily as (

    select
        feed,
        ingestion_date,
        disposition,
        rejection_reason,
        count(*) as raw_rows,
        min(ingested_at) as first_ingested_at,
        max(ingested_at) as last_ingested_at
    from triaged
    group by feed, ingestion_date, disposition, rejection_reason

),

final as (

    select
        feed,
        ingestion_date,
        disposition,
        rejection_reason,
        cast(raw_rows as bigint) as raw_rows,
        first_ingested_at,
        last_ingested_at
    from daily

)

select * from final
