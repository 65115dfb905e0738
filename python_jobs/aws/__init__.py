"""AWS side of the lake: the same raw contract and dbt project on S3 + Glue + Athena."""
