"""The dashboard's entry script: `streamlit run` runs it (python_jobs/dashboard/server.py).
One page per file under views/; the sidebar says which export the pages show."""

from __future__ import annotations

import streamlit as st

PAGES = (
    ("overview.py", "Overview", "overview"),
    ("fraud.py", "Fraud and alerts", "fraud"),
    ("model_health.py", "Model health", "model-health"),
    ("data_quality.py", "Data quality", "data-quality"),
    ("ask.py", "Ask", "ask"),
    ("live.py", "Live scoring", "live"),
)

st.set_page_config(page_title="banklake", layout="wide")
navigation = st.navigation(
    [
        # relative to this script: Streamlit resolves page files from the entry script's folder
        st.Page(f"views/{name}", title=title, url_path=url, default=index == 0)
        for index, (name, title, url) in enumerate(PAGES)
    ]
)
navigation.run()
