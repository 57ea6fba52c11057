-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d), as the
-- POSTGRES_USER (gridcase). One database per service; each service creates its own tables on start.
CREATE DATABASE intake OWNER gridcase;
CREATE DATABASE dispatch OWNER gridcase;
CREATE DATABASE escalation OWNER gridcase;
