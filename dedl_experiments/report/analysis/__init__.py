"""What the cells show: paired comparisons (compare.py, stats.py), the seeds a question needs
(power.py, planning.py), the paper's claims and their verdicts (claims.py, verdicts.py,
effects.py), learning curves (curves.py, curve_fit.py) and cost (cost.py)."""
