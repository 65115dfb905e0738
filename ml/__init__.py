"""Fraud model: training, scoring and monitoring (built on the curated ml_features mart)."""
