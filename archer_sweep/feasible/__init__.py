"""Where is the cliff? The feasible-region model (model.py) and its unit space (space.py),
shared by `next` (planning/feasible_next.py) and the live `feasible` sampler
(engine/sampler.py). Pure numpy: no I/O, no Optuna."""
