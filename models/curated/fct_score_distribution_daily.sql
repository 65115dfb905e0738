-- How the fraud model's scores are distributed per scoring day and model version, in the score
-- bands of seeds/score_bands.csv: transactions, alerts and frauds known so far per band. The
-- model-health page's score distribution (all scored transactions, not only the alerts).
with

scores as (

    select
        score_date,
        model_version,
        transaction_id,
        score,
        is_alert
    from {{ ref('stg_fraud_scores') }}

),

labels as (

    select
        transaction_id,
        is_fraud_reported
    from {{ ref('fct_transactions') }}

),

bands as (

    select * from {{ ref('score_bands') }}

),

banded as (

    select
        scores.score_date,
        scores.model_version,
        bands.band_lower,
        bands.band_upper,
        count(*) as transactions,
        sum(case when scores.is_alert then 1 else 0 end) as alerts,
        sum(case when labels.is_fraud_reported then 1 else 0 end) as frauds_known
    from scores
    inner join bands
        on scores.score >= bands.band_lower and scores.score < bands.band_upper
    left join labels
        on scores.transaction_id = labels.transaction_id
    group by scores.score_date, scores.model_version, bands.band_lower, bands.band_upper

),

final as (

    select
        score_date,
        model_version,
        cast(band_lower as double) as band_lower,
        cast(band_upper as double) as band_upper,
        cast(transactions as bigint) as transactions,
        cast(alerts as bigint) as alerts,
        cast(frauds_known as bigint) as frauds_known
    from banded

)

select * from final
