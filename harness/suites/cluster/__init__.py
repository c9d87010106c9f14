"""Cluster execution of a suite through submitit: plan (jobs, GPUs, GPU-hours), jobs (sampling tasks,
evaluation, report), executor (submit, follow, requeue, status, cancel). Not used by the default one-process run."""
