{#- Fails for any text value of the model that is a customer's CPF or full name in clear
    (checked against the processed layer's customers), or that looks like anyone's CPF
    (formatted, or 11 digits with valid check digits), e-mail address or Brazilian phone
    number (+55...): a PIX key is often one of those. Every curated model carries this test. -#}
{% test no_pii_in_clear(model) %}
{%- set text_columns = [] %}
{%- if execute %}
    {#- a relation, or on the daily run a subquery of its recomputed rows (get_where_subquery) -#}
    {%- set columns = get_column_schema_from_query('select * from ' ~ model) if model is string
        else adapter.get_columns_in_relation(model) %}
    {%- for column in columns if column.is_string() %}
        {%- do text_columns.append(column.name) %}
    {%- endfor %}
{%- endif %}

with

pii as (

    select cpf_digits as pii_value from {{ ref('int_customers_latest') }}
    union all
    select full_name from {{ ref('int_customers_latest') }}

),

text_values as (

    select cast(null as varchar) as column_name, cast(null as varchar) as text_value
    where 1 = 0
    {%- for column in text_columns %}
    union all
    select distinct '{{ column }}', cast({{ adapter.quote(column) }} as varchar)
    from {{ model }}
    {%- endfor %}

)

select text_values.column_name, text_values.text_value
from text_values
left join pii on text_values.text_value = pii.pii_value
where
    pii.pii_value is not null
    or text_values.text_value like '___.___.___-__'
    or (length(text_values.text_value) = 11 and {{ is_valid_cpf('text_values.text_value') }})
    or text_values.text_value like '%_@_%._%'
    or (text_values.text_value like '+55%' and length(text_values.text_value) between 12 and 14)

{% endtest %}
