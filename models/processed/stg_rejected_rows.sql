{{ config(materialized='view') }}

with

rejected as (

    {{ triaged_rows('rejected') }}

)

select * from rejected
