"""Public listening datasets (Last.fm 360K / 1K, HetRec 2011, Audioscrobbler) imported into
the product's layout."""
