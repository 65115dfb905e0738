-- The fraud model's scores, typed, one row per score date, model version and transaction (a
-- re-scored transaction keeps its latest score). Before the first scoring run the folder is
-- empty and cannot be read: the model is then the same columns with zero rows.
{%- set scores = source('processed_files', 'fraud_scores') %}
{%- set columns = {
    'transaction_id': 'varchar',
    'customer_id': 'varchar',
    'event_ts': 'timestamp',
    'model_version': 'varchar',
    'score': 'double',
    'threshold': 'double',
    'decision': 'varchar',
    'reason_1': 'varchar',
    'reason_1_contribution': 'double',
    'reason_2': 'varchar',
    'reason_2_contribution': 'double',
    'reason_3': 'varchar',
    'reason_3_contribution': 'double',
    'scored_at': 'timestamp',
    'score_date': 'date',
} %}
{%- set has_scores = source_has_files(scores) %}

with

source as (

    select
        {%- for column, data_type in columns.items() %}
            {%- set value = column if has_scores else 'null' %}
            {%- if data_type == 'timestamp' %}
                {{ cast_table_timestamp(value) }} as {{ column }}
            {%- else %}
                cast({{ value }} as {{ data_type }}) as {{ column }}
            {%- endif %}
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    {%- if has_scores %}
        from {{ scores }}
    {%- else %}
        where 1 = 0
    {%- endif %}

),

ranked as (

    select
        *,
        decision = 'alert' as is_alert,
        row_number() over (
            partition by score_date, model_version, transaction_id
            order by scored_at desc, score desc
        ) as score_rank
    from source

),

final as (

    select
        {%- for column in columns %}
            {{ column }},
        {%- endfor %}
        is_alert
    from ranked
    where score_rank = 1

)

select * from final
