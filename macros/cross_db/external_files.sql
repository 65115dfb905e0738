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

{#- The relation to read a source from, even before its first file lands: the source itself
    when it has files (or is a table: always on Athena), else zero rows with the columns its
    read_json/read_csv location declares (`columns = {...}`, `hive_types = {...}`), so that a
    feed nothing has delivered yet (fraud reports of a young lake, an import without labels)
    builds empty instead of failing. A location that declares no columns (read_parquet) has
    nothing to stand in for it: that read fails as before, naming its glob. -#}
{% macro source_or_empty(relation) -%}
    {%- if not execute or source_has_files(relation) -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set location = relation.render() -%}
    {%- set declared = modules.re.search("\\bcolumns\\s*=\\s*\\{([^}]*)\\}", location) -%}
    {%- if declared is none -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set partitions = modules.re.search("\\bhive_types\\s*=\\s*\\{([^}]*)\\}", location) -%}
    {#- DuckDB appends the partition columns after the file's own -#}
    {%- set pairs = declared.group(1) ~ (',' ~ partitions.group(1) if partitions else '') -%}
    {%- set columns = [] -%}
    {%- for name, data_type in modules.re.findall("'(\\w+)'\\s*:\\s*'(\\w+)'", pairs) -%}
        {%- do columns.append('cast(null as ' ~ data_type ~ ') as ' ~ name) -%}
    {%- endfor -%}
    {{ return('(select ' ~ columns | join(', ') ~ ' where false)') }}
{%- endmacro %}
