-- The intake rules' lookup (the newest pending and the newest delivered claim
-- of each device in a group, docs/performance.md §3) by one index whose
-- leading columns are both of its equality conditions. With 0001's
-- (token_hash, created_at) index the planner, misled by fresh statistics,
-- could AND it with claims_due and walk every pending claim for each
-- request; the lookup's planning alone took 0.85 ms. This index makes the
-- plan unambiguous and replaces 0001's: listing a device's claims and the
-- retention sweep still find them by its first column, and sort the few a
-- device has.
--
-- A plain CREATE INDEX holds off writes to claims while it builds: seconds
-- for the sizes the retention keeps (docs/security.md §6).
CREATE INDEX IF NOT EXISTS claims_by_device_status ON claims (token_hash, status, created_at DESC, id DESC);
DROP INDEX IF EXISTS claims_by_device;
