-- Which claim holds a scheduled occurrence: a fresh random value per claim. Leases are renewed
-- (lease_expires_at moves) while the token stays, so outcome writes, renewals and releases are
-- fenced by (lease_owner, lease_token): a node whose claim was taken over writes nothing.
ALTER TABLE occurrences ADD COLUMN lease_token BIGINT;
