"""The harness tests and benchmarks share (not part of the gridcase package): ``harness.servers`` for the
PostgreSQL databases and RabbitMQ queues they use, ``harness.processes`` for the processes they start, the
ports those listen on, and waiting for conditions."""
