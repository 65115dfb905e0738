-- Fraud by scenario: how many, how much was lost, how long until the report arrived.
-- Recent days are incomplete: reports arrive days to weeks after the transaction.
select
    fraud_scenario,
    count(*) as fraud_transactions,
    count(distinct customer_id) as customers_affected,
    sum(case when is_approved then amount_brl else 0 end) as loss_brl,
    avg(days_to_report) as avg_days_to_report,
    max(days_to_report) as max_days_to_report,
    avg(case when is_night then 1.0 else 0.0 end) as night_share
from {{ ref('fct_transactions') }}
where is_fraud_reported
group by fraud_scenario
order by loss_brl desc
