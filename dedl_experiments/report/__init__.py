"""Paper-vs-ours reporting: each table read from its experiment file (its sweep and its report
block with the paper's printed numbers and claims), tracked runs aggregated into it, and rendered
to Markdown, CSV and PNG."""
