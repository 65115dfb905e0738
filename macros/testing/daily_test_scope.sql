{#- Data tests on the daily run look only at the rows that run rewrote; every other build
    (full builds, `dbt test`, CI) tests whole tables, as before.

    var('daily_test_new_day'): the first ingestion day the daily run delivers (`banklake run`
    sets it); unset, nothing is scoped. The incremental models re-read from the last processed
    day minus var('lookback_days'), which is that day minus 1 + lookback_days: the "re-read
    day" below. A model opts in with meta daily_test_scope in its .yml, saying where the rows
    a run rewrites are:
      by: ingestion_day    rows whose `column` (an ingestion day) is on or after the re-read
                           day: the processed layer and what is incremental by ingestion day
      by: event_day        rows whose `column` (an event day) is on or after the earliest
                           event day of the transactions ingested since the re-read day (late
                           arrivals included), or the re-read day if earlier (ml_features
                           rewrites rows from the earliest late arrival's day on)
      also: <condition>    and every row where the condition holds: older rows a run
                           re-writes for another reason (a fraud label that changed)
    A test that compares a model with another table as a whole (row counts against the
    source, day counts against their median) keeps the whole table: meta
    daily_test_scope: false on the test.

    dbt wraps the `model` argument of every generic test in get_where_subquery; a project
    macro of that name takes its place. The test's own `where` config still applies. -#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set scope = daily_test_scope() -%}
    {%- if scope -%}
        {%- do conditions.append('(' ~ scope ~ ')') -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}


{#- The daily run's filter for the model the current test is attached to, or '' (no scope). -#}
{% macro daily_test_scope() -%}
    {%- set new_day = var('daily_test_new_day', none) -%}
    {%- if not new_day or not execute -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', new_day | string) -%}
        {{ exceptions.raise_compiler_error("var daily_test_new_day must be a date, YYYY-MM-DD: " ~ new_day) }}
    {%- endif -%}
    {%- if (model.config.meta or {}).get('daily_test_scope', true) is false -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set tested = graph.nodes.get(model.attached_node) if model.attached_node else none -%}
    {%- set scope = (tested.config.meta or {}).get('daily_test_scope') if tested else none -%}
    {%- if not scope -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set reread_from -%}
        cast({{ dbt.dateadd('day', -1 - var('lookback_days'), "date '" ~ new_day ~ "'") }} as date)
    {%- endset -%}
    {%- if scope.by == 'ingestion_day' -%}
        {%- set condition = scope.column ~ ' >= ' ~ reread_from -%}
    {%- elif scope.by == 'event_day' -%}
        {%- set transactions = graph.nodes['model.banklake.fct_transactions'].relation_name -%}
        {%- set condition -%}
            {{ scope.column }} >= (
                select least(coalesce(min(event_date), {{ reread_from }}), {{ reread_from }})
                from {{ transactions }}
                where ingestion_date >= {{ reread_from }}
            )
        {%- endset -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "meta daily_test_scope.by of " ~ tested.name ~ " must be ingestion_day or event_day"
        ) }}
    {%- endif -%}
    {%- if scope.also -%}
        {%- set condition = condition ~ ' or (' ~ scope.also ~ ')' -%}
    {%- endif -%}
    {%- do return(condition) -%}
{%- endmacro %}
