"""MLflow records: what makes a cell (cells.py), the tags of its runs (run_tags.py), the store a job
writes to (mlflow_store.py), SQLite's concurrency (sqlite_store.py) and the store's checks before
any work (store_checks.py)."""
