-- callhome inventory, schema version 7: per-device SSH credentials. Self-contained: it reads no other migration's
-- objects but devices, device_changes, sessions and listeners.
-- Applied by lib/inventory in one transaction together with the schema version bump.
--
-- Only the non-secret part lives here: whether a device has a password or a private key of its own, and whether the
-- fleet-wide password (config ssh/password) may be offered to it. The secrets themselves are in callhomed's
-- credentials store (ssh/credentials-file, default <state-dir>/credentials.db, mode 0600), never in this file, which
-- may be shared read-only with a group (inventory-group).

ALTER TABLE devices ADD COLUMN password_set INTEGER NOT NULL DEFAULT 0 CHECK (password_set IN (0, 1));
ALTER TABLE devices ADD COLUMN key_set INTEGER NOT NULL DEFAULT 0 CHECK (key_set IN (0, 1));
-- 0 (the default): the fleet-wide password is never sent to this device.
ALTER TABLE devices ADD COLUMN password_fallback INTEGER NOT NULL DEFAULT 0 CHECK (password_fallback IN (0, 1));

-- A change of these is a change for the listener's identity index (it decides which credentials a device gets).
CREATE TRIGGER device_changes_credentials AFTER UPDATE ON devices
WHEN NEW.password_set IS NOT OLD.password_set OR NEW.key_set IS NOT OLD.key_set
    OR NEW.password_fallback IS NOT OLD.password_fallback
BEGIN
    INSERT INTO device_changes (device_id) VALUES (NEW.id);
END;

-- Public view: documented in schemas/sql/README.md, columns only ever added (since schema version 7: password_set,
-- key_set, password_fallback).
DROP VIEW v_devices;
CREATE VIEW v_devices AS
SELECT
    d.id AS id,
    d.name AS name,
    d.state AS state,
    d.transport AS transport,
    d.fingerprint AS fingerprint,
    d.key_type AS key_type,
    d.ssh_user AS ssh_user,
    d.last_address AS last_address,
    strftime('%Y-%m-%dT%H:%M:%S', d.first_seen / 1000, 'unixepoch') || '.' || substr('00' || (d.first_seen % 1000), -3) || 'Z' AS first_seen,
    strftime('%Y-%m-%dT%H:%M:%S', d.last_seen / 1000, 'unixepoch') || '.' || substr('00' || (d.last_seen % 1000), -3) || 'Z' AS last_seen,
    d.attempts AS attempts,
    d.same_address_as AS same_address_as,
    CASE WHEN d.decided_at IS NULL THEN NULL
        ELSE strftime('%Y-%m-%dT%H:%M:%S', d.decided_at / 1000, 'unixepoch') || '.' || substr('00' || (d.decided_at % 1000), -3) || 'Z'
    END AS decided_at,
    d.decided_by AS decided_by,
    d.capabilities AS capabilities,
    CASE WHEN live.started_at IS NULL THEN 0 ELSE 1 END AS connected,
    CASE WHEN live.started_at IS NULL THEN NULL
        ELSE strftime('%Y-%m-%dT%H:%M:%S', live.started_at / 1000, 'unixepoch') || '.' || substr('00' || (live.started_at % 1000), -3) || 'Z'
    END AS session_start,
    live.listener_id AS listener_id,
    d.manufacturer AS manufacturer,
    d.serial AS serial,
    d.cert_subject AS cert_subject,
    d.cert_issuer AS cert_issuer,
    d.password_set AS password_set,
    d.key_set AS key_set,
    d.password_fallback AS password_fallback
FROM devices d
LEFT JOIN (
    SELECT s.device_id AS device_id, s.listener_id AS listener_id, s.started_at AS started_at
    FROM sessions s
    JOIN listeners l ON l.id = s.listener_id
    WHERE l.heartbeat_at >= CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) - 15000
        AND NOT EXISTS (
            SELECT 1 FROM sessions s2 JOIN listeners l2 ON l2.id = s2.listener_id
            WHERE s2.device_id = s.device_id
                AND l2.heartbeat_at >= CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) - 15000
                AND (s2.started_at > s.started_at OR (s2.started_at = s.started_at AND s2.listener_id > s.listener_id)))
) live ON live.device_id = d.id;
