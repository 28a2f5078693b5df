"""fusion.report."""
