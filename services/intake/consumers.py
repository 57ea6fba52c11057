"""Intake's consumers: the messages it takes, each to its handler."""
from services.intake import handlers
from shared.consumer import Consumer

CONSUMERS = (
    Consumer("intake.status", handlers.follow_cases, batch=True),
    Consumer("intake.departments", handlers.keep_departments),
)
