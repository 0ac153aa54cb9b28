"""The lake on disk: landing files, partitioned tables, manifests, and the one swap protocol
(``swap``) by which folders are replaced. Steps do their I/O here; transforms never do."""
