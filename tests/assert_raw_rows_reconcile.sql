-- Every raw row is accounted for exactly once: raw = processed + duplicates + rejected, per feed.
-- Returns one row per feed whose counts do not add up.
{#- the refs are spelt out so that dbt knows the test depends on every feed's model -#}
{%- set processed = {
    'transactions': ref('stg_transactions'),
    'customers': ref('stg_customers'),
    'accounts': ref('stg_accounts'),
    'fraud_reports': ref('stg_fraud_reports'),
    'alert_verdicts': ref('stg_alert_verdicts'),
} %}

with

counts as (

    {%- for feed in raw_feeds() %}
        select
            '{{ feed }}' as feed,
            (select count(*) from {{ source_or_empty(source('raw', feed)) }}) as raw_rows,
            (select count(*) from {{ processed[feed] }}) as processed_rows,
            (
                select count(*) from {{ ref('stg_duplicate_rows') }}
                where feed = '{{ feed }}'
            ) as duplicate_rows,
            (
                select count(*) from {{ ref('stg_rejected_rows') }}
                where feed = '{{ feed }}'
            ) as rejected_rows
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}

)

select *
from counts
where raw_rows != processed_rows + duplicate_rows + rejected_rows
