{#- Fails when the model does not hold exactly as many rows as its raw source: the triaged
    models must account for every raw row, once. -#}
{% test row_count_matches_source(model, source_relation) %}

with

counts as (

    select
        (select count(*) from {{ source_or_empty(source_relation) }}) as source_rows,
        (select count(*) from {{ model }}) as model_rows

)

select *
from counts
where source_rows != model_rows

{% endtest %}
