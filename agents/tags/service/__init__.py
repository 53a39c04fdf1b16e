"""The tag service: desired label state in, converged tags out (see :mod:`agents.tags.service.agent`)."""

from agents.tags.service.agent import RESULTS_STREAM, LabelItem, PreparedItem, TagServiceAgent, prepare_items

__all__ = ["RESULTS_STREAM", "LabelItem", "PreparedItem", "TagServiceAgent", "prepare_items"]
