{#- Fails for each day whose row count strays from the median daily count by more than
    max_relative_deviation (0.6 = 60%). Catches a feed that silently halved or doubled.
    Needs at least min_days days of data to judge; fewer, and it passes. -#}
{% test row_count_anomaly(model, column_name, max_relative_deviation=0.6, min_days=7) %}

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
    and abs(daily.row_count - reference.median_count)
    > {{ max_relative_deviation }} * reference.median_count

{% endtest %}
