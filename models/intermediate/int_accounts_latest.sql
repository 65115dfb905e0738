-- The newest accepted version of each account.
{{ latest_version(ref('stg_accounts'), 'account_id', [
    'account_id',
    'updated_at',
    'customer_id',
    'account_type',
    'opened_date',
    'account_status',
    'credit_limit_brl'
]) }}
