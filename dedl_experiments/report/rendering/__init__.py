"""The report as Markdown, CSV and PNG: tables and bar charts (render.py), comparisons and claims
(render_analysis.py), seeds needed (render_power.py), learning curves (render_curves.py), the
forest plot (forest.py), numbers as the paper prints them (fmt.py)."""
