-- The alert queue: every scored transaction the model alerted on, ranked per score date and
-- model version (rank 1 = highest score), with the transaction, the model's three reasons in
-- investigator wording, the fraud label as known now and the investigators' verdict, if any.
with

alerts as (

    select * from {{ ref('stg_fraud_scores') }}
    where is_alert

),

transactions as (

    select * from {{ ref('fct_transactions') }}

),

reason_codes as (

    select * from {{ ref('feature_reason_codes') }}

),

reviews as (

    select * from {{ ref('int_alert_reviews') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by score_date, model_version
            order by score desc, transaction_id asc
        ) as alert_rank
    from alerts

),

final as (

    select
        ranked.score_date,
        ranked.model_version,
        ranked.alert_rank,
        ranked.transaction_id,
        ranked.score,
        ranked.threshold,
        ranked.scored_at,
        ranked.event_ts,
        transactions.event_date,
        ranked.customer_id,
        transactions.account_id,
        transactions.transaction_type,
        transactions.channel,
        transactions.direction,
        transactions.amount_brl,
        transactions.counterparty_key,
        transactions.mcc_group,
        transactions.state,
        transactions.status,
        {%- for position in [1, 2, 3] %}
            ranked.reason_{{ position }} as reason_{{ position }}_feature,
            reason_{{ position }}.reason_code as reason_{{ position }}_code,
            reason_{{ position }}.description as reason_{{ position }}_description,
            ranked.reason_{{ position }}_contribution,
        {%- endfor %}
        transactions.fraud_scenario,
        transactions.days_to_report,
        -- a transaction not in the lake yet is not known to be fraud
        coalesce(transactions.is_fraud_reported, false) as is_fraud_reported,
        reviews.review_verdict,
        reviews.reviewed_at
    from ranked
    left join transactions
        on ranked.transaction_id = transactions.transaction_id
    left join reviews
        on ranked.transaction_id = reviews.transaction_id
    {%- for position in [1, 2, 3] %}
        left join reason_codes as reason_{{ position }}
            on ranked.reason_{{ position }} = reason_{{ position }}.feature
    {%- endfor %}

)

select * from final
