"""Catalog seeding: mock product generator and real-catalog importers."""
