-- What the service's role may do on the catalog: read what a listing reads, nothing more
-- (a listing writes nothing; publish, rebuild, withdraw, purge and `catalog fold` run as
-- the owner or a publisher role). Run as the tables' owner after `catalog upgrade`:
--   psql -v role=reporting_svc -f config/postgres-roles.sql
-- /readyz names any of these privileges the service's role lacks.
REVOKE ALL ON jobs, job_counts, count_horizon, alembic_version FROM :"role";
GRANT SELECT ON jobs, job_counts, count_horizon, alembic_version TO :"role";
