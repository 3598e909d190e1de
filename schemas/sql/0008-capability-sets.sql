-- callhome inventory, schema version 8: each distinct capability list is stored once. Self-contained: it reads no
-- other migration's objects but devices, sessions and listeners.
-- Applied by lib/inventory in one transaction together with the schema version bump.
--
-- A fleet has few distinct capability lists (one per model and software release), each a few kilobytes: stored per
-- device they were most of a large inventory's size and of the cost of listing it. devices.capability_set refers to
-- the device's list from its last <hello>; NULL before its first session. A list no device refers to any more is
-- deleted by the listener when it stores another (sessionOpened). v_devices still shows the list itself.

CREATE TABLE capability_sets (
    id INTEGER PRIMARY KEY,
    capabilities TEXT NOT NULL UNIQUE -- JSON array of capability URIs, as the device's <hello> gave them
);

INSERT INTO capability_sets (capabilities)
SELECT DISTINCT capabilities FROM devices WHERE capabilities <> '[]' ORDER BY capabilities;

ALTER TABLE devices ADD COLUMN capability_set INTEGER REFERENCES capability_sets (id);
UPDATE devices SET capability_set = (SELECT c.id FROM capability_sets c WHERE c.capabilities = devices.capabilities)
WHERE capabilities <> '[]';
CREATE INDEX devices_capability_set ON devices (capability_set);

-- The old column goes (the view is the public form of it): SQLite checks the views when a column is dropped.
DROP VIEW v_devices;
ALTER TABLE devices DROP COLUMN capabilities;

-- Public view: documented in schemas/sql/README.md, columns only ever added (schema version 8: same columns).
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
    COALESCE((SELECT c.capabilities FROM capability_sets c WHERE c.id = d.capability_set), '[]') AS capabilities,
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
