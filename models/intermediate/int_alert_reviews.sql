-- The investigators' review of each transaction, as it stands: its latest verdict (fraud or
-- legitimate) and when it was given. Who gave it stays in stg_alert_verdicts (processed).
with

verdicts as (

    select
        transaction_id,
        verdict,
        decided_at,
        row_number() over (
            partition by transaction_id
            order by decided_at desc, verdict_id desc
        ) as verdict_rank,
        count(*) over (partition by transaction_id) as verdict_count
    from {{ ref('stg_alert_verdicts') }}

)

select
    transaction_id,
    verdict as review_verdict,
    decided_at as reviewed_at,
    verdict_count
from verdicts
where verdict_rank = 1
