-- Each customer's first transaction with each counterparty, over the whole history.
{{ customer_first_seen('counterparty_key') }}
