-- The newest accepted version of each customer: what the SCD2 snapshot captures each run.
{{ latest_version(ref('stg_customers'), 'customer_id', [
    'customer_id',
    'updated_at',
    'full_name',
    'cpf_digits',
    'birth_date',
    'segment',
    'monthly_income_brl',
    'risk_rating',
    'onboarding_date',
    'state',
    'city'
]) }}
