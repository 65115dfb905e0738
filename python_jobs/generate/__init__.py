"""Synthetic raw feeds for banklake: a Brazilian retail bank's customers, accounts,
transactions (with fraud and dirty data) and fraud reports, deterministic per seed."""

from python_jobs.generate.config import GeneratorConfig
from python_jobs.generate.run import GenerationResult, GeneratorError, generate

__all__ = ["GenerationResult", "GeneratorConfig", "GeneratorError", "generate"]
