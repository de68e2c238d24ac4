"""Durable background jobs: the queue protocol (queue.py), job kinds (kinds.py), the
worker (worker.py) and detached spawning (spawn.py, `python -m ambiscope.core.jobs`).

The SQL of the jobs, job_events and workers tables is in ambiscope.db.jobs.
"""
