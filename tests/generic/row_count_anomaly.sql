{#- Fails for each day whose row count is below min_ratio or above max_ratio times the median
    daily count: catches a feed that silently halved or doubled, while pay days (about 1.8x)
    and weekends (about 0.7x) pass. Needs min_days days of data to judge; fewer, and it passes. -#}
{% test row_count_anomaly(model, column_name, min_ratio=0.4, max_ratio=2.5, min_days=7) %}

with

daily as (

    select {{ column_name }} as day, count(*) as row_count
    from {{ model }}
    group by {{ column_name }}

),

reference as (

    select
        {{ median('row_count') }} as median_count,
        count(*) as day_count
    from daily

)

select daily.day, daily.row_count, reference.median_count
from daily
cross join reference
where
    reference.day_count >= {{ min_days }}
    and (
        daily.row_count < {{ min_ratio }} * reference.median_count
        or daily.row_count > {{ max_ratio }} * reference.median_count
    )

{% endtest %}
