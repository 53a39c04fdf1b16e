"""The gateway's assembly, above every feature: the root configuration that gathers each section
(:mod:`.config`) and the runtime that builds the outbox and the agents from it and runs them (:mod:`.runtime`).

Floors, bottom-up: ``protocols`` -> ``agents.core`` -> ``agents.uplink`` -> features (``agents.footfall``,
``agents.tags``) -> ``agents.gateway`` -> the CLI. Nothing here is imported by the floors below.
"""
