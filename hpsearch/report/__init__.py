"""Reports on a study: importance, Pareto fronts, comparisons and per-class results (HTML, Markdown, PNG)."""
