-- Run by deploy/postgres/pg-node.sh on the primary (psql, as postgres, with -v password=...): the gridcase
-- role and one database per service; each service creates its own tables on start. Idempotent.
SELECT format('CREATE ROLE gridcase LOGIN PASSWORD %L', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridcase') \gexec
SELECT format('CREATE DATABASE %I OWNER gridcase', name)
  FROM unnest(ARRAY['intake', 'dispatch', 'escalation']) AS name
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = name) \gexec
