-- A tenant's own rate limits (issue 13), overriding the server's defaults
-- where set: a JSON object holding only the keys that are set, e.g.
-- {"deliveries_per_second": 5}; '{}' (every existing tenant) means the
-- server's defaults. Keys: requests_per_second, activities_per_second,
-- deliveries_per_second (per node, per second). The server reads a value it
-- cannot use as unset (logged), so no CHECK constraint pins the keys here:
-- a newer binary may add one without a migration of this table's checks.
--
-- ADD COLUMN with a constant default rewrites no rows (PostgreSQL 11+).
ALTER TABLE tenants ADD COLUMN limits jsonb NOT NULL DEFAULT '{}';
