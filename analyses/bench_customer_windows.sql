-- The benchmark's like-for-like query (python_jobs/bench): exactly the six customer windows
-- the pandas reference computes (python_jobs/bench/pandas_ref.py), over the same accepted
-- transactions, with ml_features' own frame macros. ml_features computes its other features
-- besides; this is the same work as pandas, and nothing more.
with

transactions as (

    select
        transaction_id,
        customer_id,
        event_ts,
        amount_brl
    from {{ ref('stg_transactions') }}

),

windowed as (

    select
        transaction_id,
        customer_id,
        {%- for days in [1, 7, 30] %}
            {{ count_over_previous_days('customer_id', days) }} as cust_tx_count_{{ days }}d,
            {{ sum_over_previous_days('amount_brl', 'customer_id', days) }}
                as cust_amount_sum_{{ days }}d{% if not loop.last %},{% endif %}
        {%- endfor %}
    from transactions

)

select * from windowed
