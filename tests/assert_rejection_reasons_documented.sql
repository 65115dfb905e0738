-- Every rejection reason the processed layer gives is documented for its feed in the
-- rejection_reasons seed, so the data-quality report never shows an unexplained code.
select
    rejected.feed,
    rejected.rejection_reason,
    count(*) as rejected_rows
from {{ ref('stg_rejected_rows') }} as rejected
left join {{ ref('rejection_reasons') }} as reasons
    on
        rejected.feed = reasons.feed
        and rejected.rejection_reason = reasons.rejection_reason
where reasons.rejection_reason is null
group by rejected.feed, rejected.rejection_reason
