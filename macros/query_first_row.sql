{#- The first row of `sql`'s result as a dict of column name -> value, run while dbt executes
    the model (an incremental run's bounds, computed before the model's own query so that its
    filters are literal dates); `defaults` while dbt only parses or compiles. -#}
{% macro query_first_row(sql, defaults) -%}
    {%- if not execute -%}
        {{ return(defaults) }}
    {%- endif -%}
    {%- set result = run_query(sql) -%}
    {%- set row = {} -%}
    {%- for name in result.column_names -%}
        {%- do row.update({name: result.rows[0][name]}) -%}
    {%- endfor -%}
    {{ return(row) }}
{%- endmacro %}
