-- The lake's "today": the last day with transactions. Marts measure ages and recency against
-- it rather than the wall clock, so rebuilding the same data gives the same marts.
select max(event_date) as as_of_date
from {{ ref('stg_transactions') }}
