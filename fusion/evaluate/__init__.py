"""fusion.evaluate."""
