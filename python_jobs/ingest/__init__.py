"""`banklake ingest --to s3://bucket/raw/`: the local lake's files uploaded to the same keys
under the lake's root on S3 (python_jobs/aws/s3_location.py), one kind of file a run:

- **raw** (the default): the raw partitions, to the same keys under raw/;
- **scores** (`--scores`): the fraud scores (`<lake>/processed/fraud_scores/score_date=*/`),
  beside raw/, where `banklake athena register` points the scores table;
- **monitoring** (`--monitoring`): the model's monitoring reports (`<lake>/monitoring/<day>.json`,
  ml/monitor.py), to `monitoring/` beside raw/, where `banklake report --target athena` reads
  model health (python_jobs/assistant/report_facts.py, S3Monitoring);
- **model** (`--model`): the local champion (`<lake>/models/fraud_xgb/<version>/` and the
  pointer `champion.json`), where the daily pipeline's Score step downloads it
  (infrastructure/buildspec.yml).

The modules, one job each: run.py (the entry, by kind), local_files.py (what is uploaded),
policy.py (what a different object under a key means, per kind), objects.py (SHA-256
metadata and conditional writes), transfer.py (plan, then upload), report.py (what a run
did), model.py (publishing the champion, pointer last).
"""

from python_jobs.ingest.model import ingest_model, model_order
from python_jobs.ingest.objects import SHA256_METADATA
from python_jobs.ingest.policy import POLICIES, ChampionRegression, IngestConflict, Policy
from python_jobs.ingest.report import IngestReport
from python_jobs.ingest.run import KINDS, Kind, ingest
from python_jobs.ingest.transfer import IngestConfig

__all__ = [
    "KINDS",
    "POLICIES",
    "SHA256_METADATA",
    "ChampionRegression",
    "IngestConfig",
    "IngestConflict",
    "IngestReport",
    "Kind",
    "Policy",
    "ingest",
    "ingest_model",
    "model_order",
]
