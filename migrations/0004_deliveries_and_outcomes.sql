-- Deliveries and what became of a delivered claim (docs/design.md §9).
--
-- delivery:     how the claim reaches ThingsBoard: mqtt (device-side, MQTT),
--               http (device-side, HTTP device API), attribute (server-side
--               claimingData attribute through the REST API).
-- device_name:  the device's name in ThingsBoard, when the request gave it
--               (required for attribute; lets the tracker follow any claim).
-- tb_device_id: ThingsBoard's id of the device, once resolved by name.
-- expires_at:   when ThingsBoard forgets the claim, set at delivery.
-- claimed_at, customer_id: when claimsvc saw the device with a customer.
-- checked_at:   the tracker's last look at the device (oldest first).
ALTER TABLE claims
    ADD COLUMN delivery     text NOT NULL DEFAULT 'mqtt' CHECK (delivery IN ('mqtt', 'http', 'attribute')),
    ADD COLUMN device_name  text CHECK (char_length(device_name) BETWEEN 1 AND 255),
    ADD COLUMN tb_device_id uuid,
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN claimed_at   timestamptz,
    ADD COLUMN customer_id  uuid,
    ADD COLUMN checked_at   timestamptz;

-- Claims delivered before this migration: their expiry as the API showed it.
UPDATE claims SET expires_at = delivered_at + coalesce(duration_ms, 86400000) * interval '1 millisecond'
    WHERE delivered_at IS NOT NULL;

ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN
    ('pending', 'delivered', 'rejected', 'failed', 'cancelled', 'claimed', 'expired', 'superseded'));

-- Attribute claims may last up to 365 days; device-side claims are capped
-- lower by the service (ThingsBoard's claim cache, CLAIMSVC_TB_CLAIM_CACHE_TTL).
ALTER TABLE claims DROP CONSTRAINT claims_duration_ms_check;
ALTER TABLE claims ADD CONSTRAINT claims_duration_ms_check CHECK (duration_ms BETWEEN 1 AND 31536000000);
ALTER TABLE claims ADD CONSTRAINT claims_attribute_names_device CHECK (delivery <> 'attribute' OR device_name IS NOT NULL);

-- The token and secret are kept only while the claim may still be sent.
ALTER TABLE claims DROP CONSTRAINT claims_check1;
ALTER TABLE claims ADD CONSTRAINT claims_secrets_only_while_sendable
    CHECK (status IN ('pending', 'failed') OR (token IS NULL AND secret IS NULL));

ALTER TABLE claim_events DROP CONSTRAINT claim_events_kind_check;
ALTER TABLE claim_events ADD CONSTRAINT claim_events_kind_check CHECK (kind IN
    ('accepted', 'attempt', 'delivered', 'rejected', 'failed', 'cancelled', 'retried', 'lease_expired', 'released',
     'claimed', 'expired', 'superseded', 'tracking'));

-- The tracker's queue: delivered claims that name their device, least
-- recently checked first.
CREATE INDEX claims_to_track ON claims (checked_at NULLS FIRST) WHERE status = 'delivered' AND device_name IS NOT NULL;
-- Operators and the console find claims by device name.
CREATE INDEX claims_by_device_name ON claims (device_name, created_at DESC) WHERE device_name IS NOT NULL;

-- A delivery failure of ThingsBoard's REST API refusing claimsvc's own
-- credentials is its own kind.
ALTER TABLE claims DROP CONSTRAINT claims_last_error_kind_check;
ALTER TABLE claims ADD CONSTRAINT claims_last_error_kind_check
    CHECK (last_error_kind IN ('unreachable', 'rejected', 'transient', 'unauthorized'));
