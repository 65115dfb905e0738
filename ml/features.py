"""The feature contract between the dbt `ml_features` mart and the model.

dbt computes every feature in SQL (models/curated/ml_features.sql); training and scoring
read them by these names, in this order. A model's metadata records the list it was
trained on, and loading refuses a model whose list differs from the mart's.

Windows are "previous N days" (or hours): (event_ts - N days, event_ts], always EXCLUDING the
current transaction itself (it describes the history the transaction arrives into); the one
maximum (amount_ratio_to_max_30d) looks only at strictly earlier transactions. Fraud
information counts only reports with reported_at <= the transaction's event_ts. The
counterparty's "labelled past" windows (cp_labelled_*_Nd) are the N days before the label
delay: (event_ts - LABEL_DELAY_DAYS - N days, event_ts - LABEL_DELAY_DAYS], transactions old
enough for their frauds to have been reported.
"""

from __future__ import annotations

# Identify a row and place it in time; never model inputs.
KEY_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "event_ts",
    "event_date",
    "customer_id",
    "account_id",
    "counterparty_key",
    "transaction_type",
    "channel",
    "direction",
    "amount_brl",
)

# The label as known when dbt last ran; training decides which labels it may see by
# label_reported_at relative to its cut-off.
LABEL_COLUMNS: tuple[str, ...] = ("label_is_fraud", "label_reported_at", "label_scenario")

FEATURES: tuple[str, ...] = (
    # the transaction itself
    "amount_log",  # ln(1 + amount_brl)
    "event_hour",
    "is_night",  # 00:00-05:59
    "is_weekend",
    "is_outbound",
    "is_pix",
    "is_ted",
    "is_boleto",
    "is_debit",
    "is_credit",
    "is_mobile",
    "is_internet_banking",
    "is_atm",
    "is_pos",
    "is_branch",
    # the customer's own history
    "cust_tx_count_1d",
    "cust_tx_count_7d",
    "cust_tx_count_30d",
    "cust_amount_sum_1d",
    "cust_amount_sum_7d",
    "cust_amount_sum_30d",
    "cust_amount_avg_1d",  # cust_amount_sum_Nd / cust_tx_count_Nd; null without history
    "cust_amount_avg_7d",
    "cust_amount_avg_30d",
    "cust_seconds_since_prev_tx",  # null for a customer's first transaction
    "amount_ratio_to_avg_1d",  # amount / cust_amount_avg_Nd
    "amount_ratio_to_avg_7d",
    "amount_ratio_to_avg_30d",
    "amount_zscore_30d",  # (amount - avg) / stddev over the previous 30 days
    "is_first_time_counterparty",  # never transacted with this counterparty before
    "is_new_device",  # device never seen for this customer before (false when no device)
    # the counterparty (merchant, terminal, PIX key, ...), all customers
    "cp_tx_count_1d",
    "cp_tx_count_7d",
    "cp_tx_count_30d",
    "cp_fraud_reported_30d",  # frauds among its window transactions reported by event_ts
    # its labelled past: transactions in the N days before the label delay, and the share of
    # them reported as fraud by event_ts (null without any)
    "cp_labelled_tx_count_1d",
    "cp_labelled_tx_count_7d",
    "cp_labelled_tx_count_30d",
    "cp_labelled_fraud_rate_1d",
    "cp_labelled_fraud_rate_7d",
    "cp_labelled_fraud_rate_30d",
    # mule signals: money in from many new senders, out fast
    "cust_inbound_count_1d",
    "cust_inbound_new_sender_count_7d",
    "cust_inbound_amount_1d",
    "outbound_to_inbound_ratio_1d",  # amount / cust_inbound_amount_1d for outbound, else 0
    # card testing: bursts within the hour
    "cust_tx_count_1h",
    "cust_declined_count_1h",
    # social engineering: amount against the largest earlier one of the same type/direction
    "amount_ratio_to_max_30d",  # null without an earlier one (strictly earlier, 30 days)
    # account takeover: how new the device is for the customer, shared with other customers
    "cust_device_seconds_since_first_use",  # null when no device
    "device_other_customers_30d",  # other customers who started using the device
    # compromised terminals and fraud rings' keys: the counterparty's customers
    "cp_new_customer_count_1d",  # customers there for the first time ever
    "cust_same_state_share_30d",  # share of the customer's transactions in this state (UF)
    "cp_unusual_state_share_1d",  # share there made away from the customer's usual states
    # mule: new senders within the day
    "cust_inbound_new_sender_count_1d",
)

WINDOW_DAYS: tuple[int, ...] = (1, 7, 30)

# Days a fraud label takes to become known, where the labelled-past windows end: the dbt var
# label_delay_days (dbt_project.yml) has the same value (a test keeps them equal).
LABEL_DELAY_DAYS = 7

# Days of lake history a feature needs to be mature, where its name does not say it (ml/drift.py
# reads the window from the name otherwise): the unusual-state share looks, over the
# counterparty's previous day, at each of those transactions' own previous 30 days; the
# labelled past ends LABEL_DELAY_DAYS before the transaction.
HISTORY_DAYS: dict[str, int] = {
    "cp_unusual_state_share_1d": 31,
    **{
        f"cp_labelled_{kind}_{days}d": LABEL_DELAY_DAYS + days
        for kind in ("tx_count", "fraud_rate")
        for days in WINDOW_DAYS
    },
}
