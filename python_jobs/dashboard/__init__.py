"""`banklake dashboard`: the analysts' and the fraud team's Streamlit app (docs/dashboard.md).

It reads what the build has published, through the assistant's warehouse layer (DuckDB views
over the published Parquet, or Athena in the assistant's work group), and the lake's own
files for what is not a mart (monitoring reports, model versions, quarantined files, the dbt
run history). Every figure the daily report also states comes from the report's facts
(python_jobs/assistant/report_facts.py); what only the dashboard shows is computed in
figures.py. The one thing it writes is an investigator's verdict, through
python_jobs/feedback.py.

- config.py      what the app was started with (environment, set by `banklake dashboard`)
- session.py     the warehouse of a browser session: reopened on a new export, cached, metered
- figures.py     the dashboard's own queries over the marts
- lake_files.py  the lake's files: monitoring, model versions and card, quarantine, dbt runs
- text.py        formatting and redaction of what is shown
- app/main.py, app/views/  the Streamlit entry script and its pages (a folder of their own:
                 Streamlit puts the entry script's folder on sys.path); server.py starts it
"""
