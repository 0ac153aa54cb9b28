"""Landing lines to accepted events, exactly once: routing and staging (``transforms``),
duplicates (``dedup``), the counts that must reconcile (``reconcile``), and the Great
Expectations suite run on every accepted interval (``suite``)."""
