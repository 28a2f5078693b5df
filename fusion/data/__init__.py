"""fusion.data."""
