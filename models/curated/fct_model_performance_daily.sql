-- How each model version does per scoring day, with the labels known so far: precision (alerts
-- that turned out to be fraud) and recall (frauds the model alerted on). Both rise as fraud
-- reports arrive, days to weeks after the transactions. Investigators' verdicts add the
-- confirmed negatives: precision among reviewed alerts (fraud / (fraud + legitimate)) does not
-- count an alert nobody has looked at yet as a false alarm.
with

scores as (

    select * from {{ ref('stg_fraud_scores') }}

),

labels as (

    select
        transaction_id,
        is_fraud_reported
    from {{ ref('fct_transactions') }}

),

reviews as (

    select
        transaction_id,
        review_verdict
    from {{ ref('int_alert_reviews') }}

),

daily as (

    select
        scores.score_date,
        scores.model_version,
        count(*) as transactions_scored,
        sum(case when scores.is_alert then 1 else 0 end) as alerts,
        sum(
            case when scores.is_alert and labels.is_fraud_reported then 1 else 0 end
        ) as alerts_confirmed_fraud,
        sum(case when labels.is_fraud_reported then 1 else 0 end) as frauds_known,
        -- a fraud report outranks a "legitimate" verdict: the label is fraud
        sum(
            case
                when
                    scores.is_alert
                    and reviews.review_verdict = 'legitimate'
                    and not coalesce(labels.is_fraud_reported, false)
                    then 1
                else 0
            end
        ) as alerts_confirmed_legitimate
    from scores
    left join labels
        on scores.transaction_id = labels.transaction_id
    left join reviews
        on scores.transaction_id = reviews.transaction_id
    group by scores.score_date, scores.model_version

),

final as (

    select
        score_date,
        model_version,
        cast(transactions_scored as bigint) as transactions_scored,
        cast(alerts as bigint) as alerts,
        cast(alerts_confirmed_fraud as bigint) as alerts_confirmed_fraud,
        cast(frauds_known as bigint) as frauds_known,
        cast(alerts_confirmed_legitimate as bigint) as alerts_confirmed_legitimate,
        cast(alerts_confirmed_fraud as double) / nullif(alerts, 0) as precision_so_far,
        cast(alerts_confirmed_fraud as double) / nullif(frauds_known, 0) as recall_so_far,
        cast(alerts_confirmed_fraud as double)
        / nullif(alerts_confirmed_fraud + alerts_confirmed_legitimate, 0) as precision_reviewed
    from daily

)

select * from final
