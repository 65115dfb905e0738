"""banklake's Python jobs: synthetic data, lake I/O, the dbt runner and the `banklake` CLI."""
