"""Run one outbox relay in its own process (so a test can SIGKILL it): DB_URL BROKER_URL."""
import os
import sys

from shared import faults
from shared.relay import Relay, publisher_factory
from tests.support.messaging import messaging_engine

if __name__ == "__main__":
    faults.arm(os.environ.get("GRIDCASE_CRASH_AT", ""))
    engine = messaging_engine(sys.argv[1])
    Relay(engine, "test", publisher_factory(sys.argv[2], 5), batch_size=int(sys.argv[3])).run()
