-- One fraud label per transaction, as known so far: the first report wins.
with

reports as (

    select
        *,
        row_number() over (
            partition by transaction_id
            order by reported_at, report_id
        ) as report_rank,
        count(*) over (partition by transaction_id) as report_count
    from {{ ref('stg_fraud_reports') }}

)

select
    transaction_id,
    report_id as first_report_id,
    reported_at as first_reported_at,
    scenario as fraud_scenario,
    report_channel,
    report_count
from reports
where report_rank = 1
