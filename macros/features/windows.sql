{#- Feature windows beyond sum_over_previous_days (macros/cross_db/rolling_window.sql), on the
    same frames, for DuckDB and Athena alike. -#}

{#- Sum of `expression` over the other rows of the partition in the previous `hours` hours,
    (event_ts - N hours, event_ts], counting only rows where `condition` holds; the current
    row is subtracted, as in sum_over_previous_days. -#}
{% macro sum_over_previous_hours(expression, partition_by, hours, condition='true', order_by='event_ts') -%}
    (
        sum({{ value_where(condition, expression) }})
            {{ rolling_window(partition_by, order_by, 0, hours=hours) }}
        - {{ value_where(condition, expression) }}
    )
{%- endmacro %}


{#- Rows of the partition in the previous `hours` hours, the current row not counted. -#}
{% macro count_over_previous_hours(partition_by, hours, order_by='event_ts') -%}
    (count(*) {{ rolling_window(partition_by, order_by, 0, hours=hours) }} - 1)
{%- endmacro %}


{#- Largest `expression` among the partition's rows strictly earlier than the current one
    within the previous `days` days, [event_ts - N days + 1 ms, event_ts - 1 ms], where
    `condition` holds; null when there is none. Rows at the same instant are left out: a
    maximum cannot subtract the current row. -#}
{% macro max_over_earlier_days(expression, partition_by, days, condition='true', order_by='event_ts') -%}
    max({{ value_where(condition, expression, otherwise='null') }})
        {{ rolling_window(partition_by, order_by, days, strictly_earlier=true) }}
{%- endmacro %}
