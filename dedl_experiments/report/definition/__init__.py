"""A table's definition: its experiment file's `report:` block (schema.py), read into a TableSpec
(spec.py, experiment.py); tables.py lists the tables."""
