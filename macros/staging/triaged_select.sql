{#- The end of every stg_<feed>_triaged model: each raw row once, the lineage and triage
    columns every feed shares first, then the feed's own columns, from the CTE `triaged`
    that triage() ends with. -#}
{% macro triaged_select(columns) -%}
select
    raw_row_key,
    source_file,
    source_row,
    ingested_at,
    ingestion_date,
    record_key,
    disposition,
    rejection_reason,
    {{ columns | join(',\n    ') }}
from triaged
{%- endmacro %}
