"""Floor 4, presentation made from run records alone: tables (Markdown, CSV, LaTeX), plots (PNG, SVG),
claim verdicts (claims) and regression gates between record sets (compare)."""
