"""Steps over a run folder that compute (:mod:`fusion.evaluate`, :mod:`fusion.interpret`) and
then draw (:mod:`fusion.report`): the layer above both, so that neither imports the other back."""
