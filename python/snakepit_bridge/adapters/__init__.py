"""Adapters shipped with the SDK (importable by ``module.Class`` spec), e.g.
``snakepit_bridge.adapters.threaded_showcase.ThreadedShowcaseAdapter``."""
