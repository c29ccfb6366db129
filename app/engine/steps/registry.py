"""Importing this module registers every step handler by kind."""

from app.engine.steps import approvals, comms, convert, notifications, reviews, settings

HANDLER_MODULES = (approvals, comms, convert, notifications, reviews, settings)
