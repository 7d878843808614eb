"""Reports for people: the self-contained HTML page of a run (findings and metric plots)."""
