"""The dashboard's entry script: `streamlit run` runs it (python_jobs/dashboard/server.py).
One page per file under views/ (the table is python_jobs/dashboard/pages.py)."""

from __future__ import annotations

import streamlit as st

from python_jobs.dashboard.pages import PAGES

st.set_page_config(page_title="banklake", layout="wide")
navigation = st.navigation(
    [
        # relative to this script: Streamlit resolves page files from the entry script's folder
        st.Page(f"views/{page.file}", title=page.title, url_path=page.url_path, default=i == 0)
        for i, page in enumerate(PAGES)
    ]
)
navigation.run()
