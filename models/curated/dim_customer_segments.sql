-- Customer segmentation: the bank's business segment next to a behavioural segment from RFM.
-- The RFM rules live in seeds/rfm_segments.csv; the first matching rule by priority wins.
with

insights as (

    select * from {{ ref('dim_customer_insights') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

rules as (

    select * from {{ ref('rfm_segments') }}

),

matched as (

    select
        insights.customer_id,
        rules.behaviour_segment,
        row_number() over (
            partition by insights.customer_id order by rules.priority
        ) as rule_rank
    from insights
    inner join rules
        on insights.recency_score between rules.recency_score_min and rules.recency_score_max
            and insights.frequency_score
            between rules.frequency_score_min and rules.frequency_score_max
            and insights.monetary_score
            between rules.monetary_score_min and rules.monetary_score_max

),

final as (

    select
        customers.customer_id,
        customers.segment as business_segment,
        customers.income_band,
        customers.risk_rating,
        customers.region,
        insights.recency_score,
        insights.frequency_score,
        insights.monetary_score,
        case
            when insights.transactions = 0 then 'inactive'
            else matched.behaviour_segment
        end as behaviour_segment,
        customers.risk_rating in ('D', 'E') as is_high_credit_risk
    from customers
    inner join insights
        on customers.customer_id = insights.customer_id
    left join matched
        on customers.customer_id = matched.customer_id and matched.rule_rank = 1

)

select * from final
