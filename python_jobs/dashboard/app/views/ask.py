"""Ask: the guarded assistant (`banklake ask` / `banklake sql`) on the session's warehouse,
showing the SQL it ran and the rows. Same guard, same read-only engine, same refusals."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from python_jobs.assistant.ask import (
    EXECUTION_ERRORS,
    AskFailed,
    Refusal,
    ask,
    sql_answer,
)
from python_jobs.assistant.llm import ProviderError
from python_jobs.assistant.prompting import clean_text
from python_jobs.assistant.providers import make_provider
from python_jobs.assistant.schema_context import load_schema_context
from python_jobs.dashboard import ui

MAX_ROWS = 100
EXAMPLES = (
    "taxa de fraude por canal nos últimos 7 dias",
    "top 10 customers by spend last 30 days",
    "principais alertas de ontem",
)

cfg, warehouse = ui.start("Ask")
mode = st.radio("Ask with", ["a question", "SQL"], horizontal=True, key="ask_mode")
if mode == "a question":
    st.caption(
        "Offline unless $BANKLAKE_ASSISTANT_PROVIDER names a model. Try: " + "; ".join(EXAMPLES)
    )
    text = st.text_input("Question", key="ask_question")
else:
    text = st.text_area(
        "One SELECT over the curated marts",
        value="select channel, sum(fraud_transactions) as frauds\nfrom curated.fct_daily_kpis\n"
        "group by channel\norder by frauds desc",
        key="ask_sql",
    )
if st.button("Run", key="ask_run", type="primary") and text.strip():
    try:
        context = load_schema_context()
        if mode == "a question":
            answer = ask(
                text,
                provider=make_provider(None),
                warehouse=warehouse,
                context=context,
                max_rows=MAX_ROWS,
            )
        else:
            answer = sql_answer(text, warehouse, context, max_rows=MAX_ROWS)
    except Refusal as refusal:
        st.warning(str(refusal))
    except EXECUTION_ERRORS as error:
        st.error(f"The query failed: {clean_text(error, max_chars=500)}")
    except (AskFailed, ProviderError, FileNotFoundError) as error:
        st.error(str(error))
    else:
        st.markdown(f"**{answer.source}**: {answer.reading}")
        st.code(answer.sql, language="sql")
        st.dataframe(
            pd.DataFrame(answer.rows, columns=answer.columns), hide_index=True, key="ask_rows"
        )
        for note in answer.notes:
            st.caption(note)
