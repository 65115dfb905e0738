{#- Feature windows over time: "the previous N days" of a transaction is (event_ts - N days,
    event_ts], the contract in ml/features.py. A row exactly N days earlier is out; rows at the
    same instant as the current one are in. Written once here, for DuckDB and Athena (Trino).

    rolling_window(partition_by, order_by, days): the `over (...)` clause of that frame. RANGE
    frames with an interval offset would include the row exactly N days earlier, so both
    engines order by epoch milliseconds and stop 1 ms short of N days. The frame still holds
    the current row: callers subtract it (sum_over_previous_days does). -#}
{% macro rolling_window(partition_by, order_by, days) -%}
    {{ return(adapter.dispatch('rolling_window', 'banklake')(partition_by, order_by, days)) }}
{%- endmacro %}

{% macro default__rolling_window(partition_by, order_by, days) -%}
    over (
        partition by {{ partition_by }}
        order by epoch_ms({{ order_by }})
        range between {{ days * 86400000 - 1 }} preceding and current row
    )
{%- endmacro %}

{% macro athena__rolling_window(partition_by, order_by, days) -%}
    over (
        partition by {{ partition_by }}
        order by date_diff('millisecond', timestamp '1970-01-01 00:00:00', {{ order_by }})
        range between {{ days * 86400000 - 1 }} preceding and current row
    )
{%- endmacro %}


{#- Sum of `expression` over the other rows of the partition in the previous `days` days,
    counting only rows where `condition` holds: the current row is excluded by subtracting
    it. A count is the sum of 1. Booleans go in `condition`, never summed directly. -#}
{% macro sum_over_previous_days(expression, partition_by, days, condition='true', order_by='event_ts') -%}
    (
        sum(case when {{ condition }} then {{ expression }} else 0 end)
            {{ rolling_window(partition_by, order_by, days) }}
        - case when {{ condition }} then {{ expression }} else 0 end
    )
{%- endmacro %}


{#- The same window as a join condition: `event_ts` lies in the previous `days` days of
    `reference_ts`, for non-equi joins (e.g. frauds at a counterparty before a transaction). -#}
{% macro is_within_previous_days(event_ts, reference_ts, days) -%}
    (
        {{ event_ts }} > {{ dbt.dateadd('day', -1 * days, reference_ts) }}
        and {{ event_ts }} <= {{ reference_ts }}
    )
{%- endmacro %}
