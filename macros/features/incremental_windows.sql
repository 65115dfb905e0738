{#- ml_features' windows on an incremental run (macros/cross_db/rolling_window.sql frames).
    `bounds_query` returns one row: recompute_from (the first day recomputed), window_<N>d_from
    (the earliest day an N-day window of a recomputed row reaches) and, for each long window,
    shared_<N>d_from (from that day on, the history is in the N-day window of every recomputed
    row). Returns those dates and the conditions the model's frames and history totals use:
    - is_recomputed: the row is one the run recomputes;
    - in_frames[N]: the row counts in an N-day frame: recomputed, or history before the shared
      part (which enters as per-partition totals instead);
    - in_shared[N]: a shared-history row is in the N-day totals.
    On a full build (bounds_query none) every condition is 'true': the frames read everything. -#}
{% macro incremental_feature_windows(bounds_query, long_windows) -%}
    {%- set never = '9999-12-31' -%}
    {%- if bounds_query is none -%}
        {%- set windows = {'is_recomputed': 'true', 'in_frames': {}, 'in_shared': {}} -%}
        {%- for days in long_windows -%}
            {%- do windows.in_frames.update({days: 'true'}) -%}
            {%- do windows.in_shared.update({days: 'true'}) -%}
        {%- endfor -%}
        {{ return(windows) }}
    {%- endif -%}
    {%- set defaults = {'recompute_from': never} -%}
    {%- for days in [1] + long_windows -%}
        {%- do defaults.update({'window_' ~ days ~ 'd_from': never}) -%}
    {%- endfor -%}
    {%- for days in long_windows -%}
        {%- do defaults.update({'shared_' ~ days ~ 'd_from': never}) -%}
    {%- endfor -%}
    {%- set bounds = query_first_row(bounds_query, defaults) -%}
    {%- set windows = {
        'recompute_from': bounds['recompute_from'],
        'is_recomputed': "event_date >= date '" ~ bounds['recompute_from'] ~ "'",
        'window_from': {}, 'shared_from': {}, 'in_frames': {}, 'in_shared': {},
    } -%}
    {%- for days in [1] + long_windows -%}
        {%- do windows.window_from.update({days: bounds['window_' ~ days ~ 'd_from']}) -%}
    {%- endfor -%}
    {%- for days in long_windows -%}
        {%- set shared_from = bounds['shared_' ~ days ~ 'd_from'] -%}
        {%- do windows.shared_from.update({days: shared_from}) -%}
        {%- do windows.in_frames.update({days:
            '(' ~ windows.is_recomputed ~ " or event_date < date '" ~ shared_from ~ "')"}) -%}
        {%- do windows.in_shared.update({days: "event_date >= date '" ~ shared_from ~ "'"}) -%}
    {%- endfor -%}
    {{ return(windows) }}
{%- endmacro %}


{#- A long window's value: its part over the rows the frames read (`read`) plus, on an
    incremental run, its part over the shared history (`shared`, a per-partition total from a
    left join, null when the partition had none there). A full build's frames read everything. -#}
{% macro plus_shared_history(read, shared) -%}
    {%- if is_incremental() -%}
        {{ read }} + coalesce({{ shared }}, 0)
    {%- else -%}
        {{ read }}
    {%- endif -%}
{%- endmacro %}

{#- The same for a maximum (null when neither part has a row; Trino's greatest is null if any
    argument is). -#}
{% macro max_with_shared_history(read, shared) -%}
    {%- if is_incremental() -%}
        coalesce(greatest({{ read }}, {{ shared }}), {{ read }}, {{ shared }})
    {%- else -%}
        {{ read }}
    {%- endif -%}
{%- endmacro %}
