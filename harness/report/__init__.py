"""Presentation made from run records alone: tables (Markdown, CSV, LaTeX), plots (PNG, SVG), claim verdicts."""
