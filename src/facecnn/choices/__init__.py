"""The training choices a config names (optimizers, lr schedules, objectives), as torch-free
tables below `facecnn.config`: config validates names against them without importing the
training package, whose `facecnn.train(...)` in turn imports config."""
