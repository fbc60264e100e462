-- last_error_kind: why the last attempt failed, as a kind the dispatcher
-- decides by (claim.FailureKind), instead of a prefix of last_error's text.
-- 'unreachable': no answer from ThingsBoard at all; 'rejected': ThingsBoard
-- refused the device's credentials; 'transient': anything else.
ALTER TABLE claims ADD COLUMN last_error_kind text
    CHECK (last_error_kind IN ('unreachable', 'rejected', 'transient'));

-- Rows written before this migration: the one time their text is read.
UPDATE claims SET last_error_kind = CASE
        WHEN starts_with(last_error, 'broker unreachable: ') THEN 'unreachable'
        WHEN status = 'rejected' THEN 'rejected'
        ELSE 'transient' END
    WHERE last_error IS NOT NULL;
