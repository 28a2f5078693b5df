"""fusion.interpret."""
