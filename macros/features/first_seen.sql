{#- The first transaction of each customer with each value of `key_column` (a counterparty, a
    device) over the customer's whole history, for "first time" features. Incremental by
    ingestion day like the processed layer: a run reads the transactions ingested since the
    last processed day (minus var('lookback_days')) and merges them with what is stored for
    the same pairs, so a late-arriving earlier transaction takes over as the first one.
    Ties at the same instant go to the smaller transaction_id. -#}
{% macro customer_first_seen(key_column) -%}
{{ config(
    materialized='incremental',
    incremental_strategy=incremental_strategy(),
    unique_key=['customer_id', key_column],
    table_type='iceberg',
    on_schema_change='fail'
) }}

with

transactions as (

    select
        customer_id,
        {{ key_column }},
        transaction_id,
        event_ts,
        ingestion_date
    from {{ ref('stg_transactions') }}
    where
        {{ key_column }} is not null
        {%- if is_incremental() %}
        and ingestion_date >= (
            select {{ dbt.dateadd('day', -1 * var('lookback_days'), 'max(last_ingestion_date)') }}
            from {{ this }}
        )
        {%- endif %}

),

candidates as (

    select * from transactions
    {%- if is_incremental() %}

    union all

    select
        seen.customer_id,
        seen.{{ key_column }},
        seen.first_transaction_id as transaction_id,
        seen.first_event_ts as event_ts,
        seen.last_ingestion_date as ingestion_date
    from {{ this }} as seen
    inner join (
        select distinct
            customer_id,
            {{ key_column }}
        from transactions
    ) as touched
        on
            seen.customer_id = touched.customer_id
            and seen.{{ key_column }} = touched.{{ key_column }}
    {%- endif %}

),

ranked as (

    select
        customer_id,
        {{ key_column }},
        transaction_id,
        event_ts,
        row_number() over (
            partition by customer_id, {{ key_column }}
            order by event_ts, transaction_id
        ) as seen_rank,
        max(ingestion_date) over (
            partition by customer_id, {{ key_column }}
        ) as last_ingestion_date
    from candidates

)

select
    customer_id,
    {{ key_column }},
    transaction_id as first_transaction_id,
    event_ts as first_event_ts,
    last_ingestion_date
from ranked
where seen_rank = 1
{%- endmacro %}
