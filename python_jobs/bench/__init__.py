"""`banklake bench`: the whole pipeline at scale on one machine, timed stage by stage, with a
pandas reference doing the same staging and customer windows on the same data.

Why a package of small modules: each measurement (memory sampling, lake sizes, partition
pruning, the pandas reference, the cross-check, the report) is useful and testable on its
own, and the run in `run.py` only strings them together.
"""
