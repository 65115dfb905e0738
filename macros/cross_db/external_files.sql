{#- True when a source has data to read. On DuckDB a source read in place from the lake folder
    (`read_parquet('<glob>', ...)`) fails when the glob matches no file, e.g. fraud scores
    before the first scoring run; this checks the glob of the source's own location first.
    On Athena the Glue table always exists (empty or not), so it is always readable.
    Call it inside models only: at parse time (execute = false) it answers false. -#}
{% macro source_has_files(relation) -%}
    {{ return(adapter.dispatch('source_has_files', 'banklake')(relation)) }}
{%- endmacro %}

{% macro default__source_has_files(relation) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set location = modules.re.search("read_\\w+\\(\\s*'([^']+)'", relation.render()) -%}
    {%- if location is none -%}
        {#- a table or view, not files read in place -#}
        {{ return(true) }}
    {%- endif -%}
    {%- set found = run_query("select count(*) from glob('" ~ location.group(1) ~ "')") -%}
    {{ return(found.columns[0].values()[0] > 0) }}
{%- endmacro %}

{% macro athena__source_has_files(relation) -%}
    {{ return(true) }}
{%- endmacro %}
