-- Schema 5: fair share counts each key's and tenant's claims of the last hour.
CREATE INDEX IF NOT EXISTS jobs_by_owner_start ON jobs (owner, started_at);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_start ON jobs (owner, tenant, started_at);
