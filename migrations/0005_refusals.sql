-- refusals: the attempts in a row that ThingsBoard answered but refused in a
-- way a device profile explains when it repeats (MQTT CONNACK 3, or the
-- connection closed before PUBACK). The dispatcher gives up on such a claim
-- early, with a reason a person understands, instead of retrying it until
-- CLAIMSVC_MAX_PENDING_AGE (docs/design.md §3).
ALTER TABLE claims ADD COLUMN refusals integer NOT NULL DEFAULT 0;

ALTER TABLE claims DROP CONSTRAINT claims_last_error_kind_check;
ALTER TABLE claims ADD CONSTRAINT claims_last_error_kind_check
    CHECK (last_error_kind IN ('unreachable', 'rejected', 'transient', 'unauthorized', 'refused'));
