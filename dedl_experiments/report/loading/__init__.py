"""Runs from the MLflow store (mlflow_runs.py) and the choice of one dataset by content (datasets.py)."""
