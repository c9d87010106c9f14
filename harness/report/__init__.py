"""Presentation: tables (and, beside them, plots and claim verdicts) made from run records alone."""
