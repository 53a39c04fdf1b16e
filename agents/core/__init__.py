"""Runtime core: typed configuration, back-off, errors, and the agent supervisor."""
