{#- Iceberg maintenance on Athena, as a run-operation after the daily build:

        dbt run-operation optimize_iceberg_tables --target athena
        dbt run-operation optimize_iceberg_tables --args '{vacuum: false}' --target athena

    Incremental merges leave many small files and old snapshots behind; OPTIMIZE ... BIN_PACK
    compacts the files and VACUUM expires snapshots past the table's retention. Only tables
    this project writes as Iceberg are touched; on other targets it says so and does nothing. -#}
{% macro optimize_iceberg_tables(vacuum=true) %}
    {%- if target.type != 'athena' %}
        {{ log("optimize_iceberg_tables: Iceberg maintenance is for the athena target; "
               ~ target.type ~ " needs none", info=true) }}
        {{ return([]) }}
    {%- endif %}
    {%- set statements = [] %}
    {%- for node in graph.nodes.values()
        if node.resource_type in ['model', 'snapshot']
        and node.config.get('table_type') == 'iceberg'
        and node.config.materialized in ['table', 'incremental', 'snapshot'] %}
        {%- set relation = adapter.get_relation(node.database, node.schema, node.alias) %}
        {%- if relation is not none %}
            {%- set name = relation.schema ~ '.' ~ relation.identifier %}
            {%- do statements.append('optimize ' ~ name ~ ' rewrite data using bin_pack') %}
            {%- if vacuum %}
                {%- do statements.append('vacuum ' ~ name) %}
            {%- endif %}
        {%- endif %}
    {%- endfor %}
    {%- for statement in statements %}
        {{ log("optimize_iceberg_tables: " ~ statement, info=true) }}
        {%- do run_query(statement) %}
    {%- endfor %}
    {{ return(statements) }}
{% endmacro %}
