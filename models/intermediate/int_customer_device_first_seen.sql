-- Each customer's first transaction from each device, over the whole history.
{{ customer_first_seen('device_id') }}
