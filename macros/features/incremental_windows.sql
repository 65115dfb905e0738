{#- ml_features' windows on an incremental run (macros/cross_db/rolling_window.sql frames).

    A run recomputes two sets of rows, each with its own bounds:
    - "new": every row from new_from, the first day with no featured row, on;
    - "late": in the partitions late data reaches (a customer, counterparty or device with a
      late-arriving transaction or a newly reported fraud since late_from: the model's
      *_in_late_scope flags), every row from late_from, the day of the earliest such change,
      on. late_from <= new_from; they are equal when nothing late arrived.
    A window partition is computed wholly with one set's bounds: "late" when its flag is set.

    `bounds_query` returns one row: new_from and late_from, and for each of them (prefix new_
    or late_) window_<N>d_from (the earliest day an N-day window of a recomputed row reaches)
    and, for each long window, shared_<N>d_from (from that day on, the history is in the N-day
    window of every recomputed row, and enters as per-partition totals). Returns those dates
    as windows.new / windows.late (recompute_from, window_from[N], shared_from[N]) and
    windows.read_from[N], the earliest day any N-day window reaches (the late set's). The
    conditions on a row are the macros below; on a full build (bounds_query none) every
    condition is 'true'. -#}
{% macro incremental_feature_windows(bounds_query, long_windows) -%}
    {%- if bounds_query is none -%}
        {{ return({'incremental': false}) }}
    {%- endif -%}
    {%- set never = '9999-12-31' -%}
    {%- set defaults = {} -%}
    {%- for tier in ['new', 'late'] -%}
        {%- do defaults.update({tier ~ '_from': never}) -%}
        {%- for days in [1] + long_windows -%}
            {%- do defaults.update({tier ~ '_window_' ~ days ~ 'd_from': never}) -%}
        {%- endfor -%}
        {%- for days in long_windows -%}
            {%- do defaults.update({tier ~ '_shared_' ~ days ~ 'd_from': never}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set bounds = query_first_row(bounds_query, defaults) -%}
    {%- set windows = {'incremental': true, 'read_from': {}} -%}
    {%- for tier in ['new', 'late'] -%}
        {%- set dates = {
            'recompute_from': bounds[tier ~ '_from'] | string, 'window_from': {}, 'shared_from': {}
        } -%}
        {%- for days in [1] + long_windows -%}
            {%- do dates.window_from.update({days: bounds[tier ~ '_window_' ~ days ~ 'd_from'] | string}) -%}
        {%- endfor -%}
        {%- for days in long_windows -%}
            {%- do dates.shared_from.update({days: bounds[tier ~ '_shared_' ~ days ~ 'd_from'] | string}) -%}
        {%- endfor -%}
        {%- do windows.update({tier: dates}) -%}
    {%- endfor -%}
    {#- late_from <= new_from: the late set's windows reach furthest. Each date is a bound as
        queried, never one derived here (the Athena dry run swaps each for its own answer). -#}
    {%- for days in [1] + long_windows -%}
        {%- do windows.read_from.update({days: windows.late.window_from[days]}) -%}
    {%- endfor -%}
    {{ return(windows) }}
{%- endmacro %}


{#- One tier's condition on a row (`dates`: windows.new or windows.late): `kind` recomputed
    (the row is recomputed), frames (it counts in an N-day frame: recomputed, or history
    before the shared part, which enters as per-partition totals instead) or shared (it is
    shared history, in the N-day totals). -#}
{% macro _tier_condition(dates, kind, days) -%}
    {%- if kind == 'recomputed' -%}
        event_date >= date '{{ dates.recompute_from }}'
    {%- elif kind == 'frames' -%}
        (event_date >= date '{{ dates.recompute_from }}' or event_date < date '{{ dates.shared_from[days] }}')
    {%- else -%}
        (event_date >= date '{{ dates.shared_from[days] }}' and event_date < date '{{ dates.recompute_from }}')
    {%- endif -%}
{%- endmacro %}


{#- The tier's condition for a row of a partition in the late scope (`late_scope`, a boolean
    column), the new tier's for the others; 'true' on a full build (frames read everything). -#}
{% macro _by_scope(windows, late_scope, kind, days=none) -%}
    {%- if not windows.incremental -%}
        true
    {%- else -%}
        (case when {{ late_scope }} then {{ _tier_condition(windows.late, kind, days) }} else {{ _tier_condition(windows.new, kind, days) }} end)
    {%- endif -%}
{%- endmacro %}


{#- The row's features over the partitions `late_scope` flags are recomputed by this run. -#}
{% macro is_recomputed(windows, late_scope) -%}
    {{ _by_scope(windows, late_scope, 'recomputed') }}
{%- endmacro %}


{#- The row counts in an N-day frame of its partition. -#}
{% macro is_in_frames(windows, late_scope, days) -%}
    {{ _by_scope(windows, late_scope, 'frames', days) }}
{%- endmacro %}


{#- The row is in the N-day shared history of a set of recomputed rows (`tier`: 'new' or
    'late'), whatever its partitions' scope: the shared totals are computed for both sets, and
    each partition takes its own set's (shared_total). Incremental runs only. -#}
{% macro is_shared_history_of_tier(windows, tier, days) -%}
    {{ _tier_condition(windows[tier], 'shared', days) }}
{%- endmacro %}


{#- The row may be in the shared history of a window over any of `days` (a list of long
    windows), for either set: one range of days, a filter the scan of the table can use. Its
    start is the least of the bounds in SQL, not here: each date stays a bound as queried. -#}
{% macro may_be_shared_history(windows, days) -%}
    {%- set starts = [] -%}
    {%- for tier in ['new', 'late'] -%}
        {%- for n in days -%}
            {%- do starts.append("date '" ~ windows[tier].shared_from[n] ~ "'") -%}
        {%- endfor -%}
    {%- endfor -%}
    (event_date >= least({{ starts | join(', ') }}) and event_date < date '{{ windows.new.recompute_from }}')
{%- endmacro %}


{#- A shared total of the partition, from `history` (a per-partition totals relation with the
    columns new_<column> and late_<column>): the late set's if `late_scope` (its flag) is set. -#}
{% macro shared_total(late_scope, history, column) -%}
    (case when {{ late_scope }} then {{ history }}.late_{{ column }} else {{ history }}.new_{{ column }} end)
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


{#- The row is read by the frames of the windows over `days` (a list of long windows; the
    1-day and 1-hour windows are always read) for the partitions flagged by `late_scopes` (a
    list of flag columns): for each tier, the recomputed days, the day before them and the
    history before the shared part of each long window. 'true' on a full build. -#}
{% macro is_framed(windows, late_scopes, days) -%}
    {%- if not windows.incremental -%}
        true
    {%- else -%}
        ({{ _tier_frames(windows.new, days) }} or (({{ late_scopes | join(' or ') }}) and {{ _tier_frames(windows.late, days) }}))
    {%- endif -%}
{%- endmacro %}


{#- The row may be framed for the windows over `days`, whatever its partitions' scope (either
    set's frames): a filter on days alone. 'true' on a full build. -#}
{% macro may_be_framed(windows, days) -%}
    {%- if not windows.incremental -%}
        true
    {%- else -%}
        ({{ _tier_frames(windows.new, days) }} or {{ _tier_frames(windows.late, days) }})
    {%- endif -%}
{%- endmacro %}


{% macro _tier_frames(dates, days) -%}
    (event_date >= date '{{ dates.window_from[1] }}'
    {%- for n in days %} or (event_date >= date '{{ dates.window_from[n] }}' and event_date < date '{{ dates.shared_from[n] }}'){% endfor %})
{%- endmacro %}
