"""Synthetic listening logs with latent structure, written as a log shipper would deliver them."""
