{#- The raw feeds, in the contract's order (python_jobs/lake/schemas.py FEEDS): every model or
    test that goes over all feeds loops over this one list. -#}
{% macro raw_feeds() -%}
    {{ return(['transactions', 'customers', 'accounts', 'fraud_reports', 'alert_verdicts']) }}
{%- endmacro %}
