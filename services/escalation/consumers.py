"""Escalation's consumers: the messages it takes, each to its handler."""
from services.escalation import handlers
from shared.consumer import Consumer

CONSUMERS = (
    Consumer("escalation.open", handlers.open_cases, batch=True),
    Consumer("escalation.areas", handlers.keep_areas),
    Consumer("escalation.transfer", handlers.transfer_case),
    Consumer("escalation.verify", handlers.verify_case),
    Consumer("escalation.departments", handlers.keep_departments),
)
