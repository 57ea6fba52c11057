"""Dispatch's consumers: the messages it takes, each to its handler."""
from services.dispatch import handlers
from shared.consumer import Consumer

CONSUMERS = (
    Consumer("dispatch.locate", handlers.dispatch_cases, batch=True),
    Consumer("dispatch.closed", handlers.close_case),
    Consumer("dispatch.transfer", handlers.follow_transfer),
)
