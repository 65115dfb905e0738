"""The jobs' figures as CloudWatch Embedded Metric Format records (docs/operations.md, Job
metrics; ADR 0024).

    catalog.py   every metric: name, unit, dimensions, the jobs that emit it (docs and tests
                 read it; the CloudFormation alarms are checked against it)
    emf.py       Figure and emit(): the EMF records, to lake/metrics/<job>/<day>.jsonl locally
                 and one line each on stderr on AWS, where CloudWatch Logs extracts them
    jobs.py      one function per job that turns its result object into figures
    reading.py   the local records back, for the dashboard

Standard library only (catalog, emf, jobs): the S3 trigger Lambda and the stream consumer
carry them.
"""
