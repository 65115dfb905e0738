{#- Rows of one disposition from every raw feed's triaged model, in one shape: the single
    place to look for what was rejected or deduplicated, and why. -#}
{% macro triaged_rows(disposition) -%}
    {%- for feed in raw_feeds() %}
    select
        '{{ feed }}' as feed,
        raw_row_key,
        source_file,
        source_row,
        ingestion_date,
        ingested_at,
        record_key,
        rejection_reason
    from {{ ref('stg_' ~ feed ~ '_triaged') }}
    where disposition = '{{ disposition }}'
    {%- if not loop.last %}

    union all
    {% endif -%}
    {%- endfor %}
{%- endmacro %}
