"""Reports from run records: tables (Markdown, CSV, LaTeX) and plots (PNG, SVG)."""
