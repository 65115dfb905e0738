{#- The newest version of each `key` among a processed model's accepted rows: the latest
    updated_at, a tie going to the later delivery (ingested_at, then source_file). -#}
{% macro latest_version(relation, key, columns) -%}
with

versions as (

    select
        *,
        row_number() over (
            partition by {{ key }}
            order by updated_at desc, ingested_at desc, source_file desc
        ) as version_rank
    from {{ relation }}

)

select
    {{ columns | join(',\n    ') }}
from versions
where version_rank = 1
{%- endmacro %}
