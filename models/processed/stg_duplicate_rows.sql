{{ config(materialized='view') }}

with

duplicates as (

    {{ triaged_rows('duplicate') }}

)

select
    feed,
    raw_row_key,
    source_file,
    source_row,
    ingestion_date,
    ingested_at,
    record_key
from duplicates
