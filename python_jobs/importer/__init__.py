"""Bring your own data: import a transactions file (CSV or Parquet) into the raw layer with a
small YAML mapping, so the whole pipeline runs on it exactly as on generated data."""

from python_jobs.importer.mapping import Mapping, MappingError, load_mapping, parse_mapping
from python_jobs.importer.run import ImportResult, import_file
from python_jobs.importer.source import UnusableSource

__all__ = [
    "ImportResult",
    "Mapping",
    "MappingError",
    "UnusableSource",
    "import_file",
    "load_mapping",
    "parse_mapping",
]
