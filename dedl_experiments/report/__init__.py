"""Paper-vs-ours reporting: the paper's published tables as data, aggregation of
tracked runs into those tables, and rendering to Markdown, CSV and PNG."""
