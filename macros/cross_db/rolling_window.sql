{#- Feature windows over time: "the previous N days" of a transaction is (event_ts - N days,
    event_ts], the contract in ml/features.py. A row exactly N days earlier is out; rows at the
    same instant as the current one are in. Written once here, for DuckDB and Athena (Trino).

    rolling_window(partition_by, order_by, days, hours=0, strictly_earlier=false): the
    `over (...)` clause of that frame, N = days + hours. RANGE frames with an interval offset
    would include the row exactly N earlier, so both engines order by epoch milliseconds and
    stop 1 ms short of N. The frame still holds the current row: callers subtract it
    (sum_over_previous_days does). strictly_earlier ends the frame 1 ms before the current
    row instead, for aggregates that cannot subtract it (max): rows at the same instant are
    then out too. -#}
{% macro rolling_window(partition_by, order_by, days, hours=0, strictly_earlier=false) -%}
    {{ return(adapter.dispatch('rolling_window', 'banklake')(
        partition_by, order_by, days, hours, strictly_earlier
    )) }}
{%- endmacro %}

{% macro _rolling_window_frame(days, hours, strictly_earlier) -%}
    range between {{ (days * 24 + hours) * 3600000 - 1 }} preceding
        and {{ '1 preceding' if strictly_earlier else 'current row' }}
{%- endmacro %}

{% macro default__rolling_window(partition_by, order_by, days, hours=0, strictly_earlier=false) -%}
    over (
        partition by {{ partition_by }}
        order by epoch_ms({{ order_by }})
        {{ _rolling_window_frame(days, hours, strictly_earlier) }}
    )
{%- endmacro %}

{% macro athena__rolling_window(partition_by, order_by, days, hours=0, strictly_earlier=false) -%}
    over (
        partition by {{ partition_by }}
        order by date_diff('millisecond', timestamp '1970-01-01 00:00:00', {{ order_by }})
        {{ _rolling_window_frame(days, hours, strictly_earlier) }}
    )
{%- endmacro %}


{#- Sum of `expression` over the other rows of the partition in the previous `days` days,
    counting only rows where `condition` holds: the current row is excluded by subtracting
    it. A count is the sum of 1. Booleans go in `condition`, never summed directly. -#}
{% macro sum_over_previous_days(expression, partition_by, days, condition='true', order_by='event_ts') -%}
    (
        sum({{ value_where(condition, expression) }})
            {{ rolling_window(partition_by, order_by, days) }}
        - {{ value_where(condition, expression) }}
    )
{%- endmacro %}


{#- `expression` where `condition` holds, else `otherwise`. Without a condition the expression
    itself: DuckDB does not fold `case when true`, and evaluating it for every row of a
    window is a measurable share of a window query. -#}
{% macro value_where(condition, expression, otherwise='0') -%}
    {%- if condition == 'true' -%}
        {{ expression }}
    {%- else -%}
        case when {{ condition }} then {{ expression }} else {{ otherwise }} end
    {%- endif -%}
{%- endmacro %}


{#- Rows of the partition in the previous `days` days where `condition` holds, the current row
    not counted. Without a condition, count(*) of the frame: its size, cheaper than summing 1
    over it. -#}
{% macro count_over_previous_days(partition_by, days, condition='true', order_by='event_ts') -%}
    {%- if condition == 'true' -%}
        (count(*) {{ rolling_window(partition_by, order_by, days) }} - 1)
    {%- else -%}
        {{ sum_over_previous_days('1', partition_by, days, condition, order_by) }}
    {%- endif -%}
{%- endmacro %}


{#- The partition's previous row's `order_by`, rows ordered by (order_by, tie_breaker): what
    lag() gives, among the rows where `condition` holds (the others are skipped; the current
    row's same-instant peers must satisfy it too). On DuckDB it is taken from frames over the
    order of rolling_window, so that it shares the sort of the partition's feature windows
    instead of sorting again: a row with a same-instant peer of lower tie_breaker gets its own
    instant, any other the latest earlier one. Exact while `order_by` has no sub-millisecond
    part (event_ts is parsed to the second). -#}
{% macro previous_event_ts(partition_by, order_by='event_ts', tie_breaker='transaction_id', condition='true') -%}
    {{ return(adapter.dispatch('previous_event_ts', 'banklake')(
        partition_by, order_by, tie_breaker, condition
    )) }}
{%- endmacro %}

{% macro default__previous_event_ts(partition_by, order_by, tie_breaker, condition) -%}
    {%- if condition == 'true' -%}
        lag({{ order_by }}) over (
            partition by {{ partition_by }} order by {{ order_by }}, {{ tie_breaker }}
        )
    {%- else -%}
        max(case when {{ condition }} then {{ order_by }} end) over (
            partition by {{ partition_by }} order by {{ order_by }}, {{ tie_breaker }}
            rows between unbounded preceding and 1 preceding
        )
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__previous_event_ts(partition_by, order_by, tie_breaker, condition) -%}
    {%- set candidate = order_by if condition == 'true'
        else 'case when ' ~ condition ~ ' then ' ~ order_by ~ ' end' -%}
    case
        when
            min({{ tie_breaker }}) over (
                partition by {{ partition_by }}
                order by epoch_ms({{ order_by }})
                range between current row and current row
            ) < {{ tie_breaker }}
            then {{ order_by }}
        else max({{ candidate }}) over (
            partition by {{ partition_by }}
            order by epoch_ms({{ order_by }})
            range between unbounded preceding and 1 preceding
        )
    end
{%- endmacro %}


{#- The same window as a join condition: `event_ts` lies in the previous `days` days of
    `reference_ts`, for non-equi joins (e.g. frauds at a counterparty before a transaction). -#}
{% macro is_within_previous_days(event_ts, reference_ts, days) -%}
    (
        {{ event_ts }} > {{ dbt.dateadd('day', -1 * days, reference_ts) }}
        and {{ event_ts }} <= {{ reference_ts }}
    )
{%- endmacro %}
