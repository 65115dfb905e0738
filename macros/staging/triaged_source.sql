{#- The first CTE of every stg_<feed>_triaged model, `source`: the feed's raw rows (a typed,
    empty stand-in until the feed's first file lands: source_or_empty), on incremental runs
    only the re-read ingestion days (incremental_ingestion_filter). -#}
{% macro triaged_source(feed) -%}
{#- materialized on incremental runs, so that only the re-read partitions are opened -#}
source as {% if is_incremental() %}{{ materialized_cte() }} {% endif %}(

    select * from {{ source_or_empty(source('raw', feed)) }}
    {{ incremental_ingestion_filter() }}

)
{%- endmacro %}
