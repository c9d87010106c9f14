"""The ablation suite: rows x paired seeds, each row a tokenizer -> AR generator -> held-out measurements.

A suite YAML (``alitok/configs/ablation.yaml``) names the rows (switches over a base), the baseline
row and presets; a preset holds the seeds, a launcher, the three trainer configs (stage 1, stage 2,
AR) and the evaluation. The package only uses registries: trainers by the name their config gives,
the tokenizer and generator plugins by name, so the engine never imports a model family. One module
per job:

    suite.py       the suite file -> frozen dataclasses (harness.core.config), one preset resolved
    planning.py    the plan: one job per (seed, row, stage) with its folder and config; validate (--plan)
    runner.py      run the jobs not done yet (trainers in-process or through a launcher), then summarise
    evaluation.py  one (seed, row): evaluate_reconstruction and evaluate_samples, the suite pipeline
    summary.py     mean ± sd per row, paired differences to the baseline, table, plot, summary.json
    paper_effects.py  the paper's comparisons (B − A, ...) read at the preset: replicates, excluded, not testable

Layout under ``--out`` (one folder per row/seed/stage; a folder with its record is done and skipped,
one without resumes from its last checkpoint)::

    seed{S}/{ROW}/stage1/      train_record.json, last.safetensors, model.safetensors, ...
    seed{S}/F/stage2/          (rows with ``stage2: true``; stage 1 and AR come from the ``from`` row)
    seed{S}/{ROW}/ar/          train_record.json (held-out next-token accuracy / CE, baselines)
    seed{S}/{ROW}/eval/        eval_record.json (variant = ROW): rFID/PSNR/SSIM, gFID/KID/P/R, AR metrics;
                               samples.npz (reconstructions.npz only while it is measured)
    heldout-<digest>.npz       the held-out images, written once (their features: the feature cache)
    summary.json, ablation_table.md, ablation_bars.png/.svg, command.txt

Data: preset ``tiny`` reads the embedded natural patches; preset ``imagenet`` reads ImageNet folders
(``imagenet_root`` or ``--imagenet-root``: every trainer whose ``data.source`` is imagenet gets it as
``data.root``, and the evaluation's held-out images are the first ``per_class`` of each class of its
``val`` split, streamed in batches; gFID against those images or against ``eval.ref_stats``).

Paired seeds: seed S is the ``seed`` of every row's trainers (initialisation and data order) and of
its sampling; the data and held-out images are the same for all rows. The table gives each row's
mean and sample sd over seeds and the paired difference to the baseline row (mean of the per-seed
differences ± paired standard error, ``harness.report.paired``), which removes the seed-to-seed
variation the rows share.
"""

from __future__ import annotations

from harness.suites.ablation.evaluation import ar_metrics, evaluate_job, heldout
from harness.suites.ablation.planning import EVAL_RECORD, RECORD, Job, command_line, plan, validate
from harness.suites.ablation.runner import run, train_job
from harness.suites.ablation.suite import Row, Suite, load_suite
from harness.suites.ablation.summary import TABLE_METRICS, paired_differences, print_summary, summarize, table_markdown

__all__ = [
    "EVAL_RECORD",
    "RECORD",
    "TABLE_METRICS",
    "Job",
    "Row",
    "Suite",
    "ar_metrics",
    "command_line",
    "evaluate_job",
    "heldout",
    "load_suite",
    "paired_differences",
    "plan",
    "print_summary",
    "run",
    "summarize",
    "table_markdown",
    "train_job",
    "validate",
]
