-- callhome inventory, schema version 1.
-- Applied by lib/inventory in one transaction together with the schema version bump.
-- Tables use plain SQL so that a PostgreSQL inventory can follow the same shape; the trigger bodies
-- (RAISE) and the date functions in the public views are SQLite's and would be rewritten there.
-- All times are INTEGER milliseconds since the Unix epoch, UTC.

CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'revoked')),
    transport TEXT NOT NULL CHECK (transport IN ('ssh', 'tls')),
    -- the current identity; earlier ones live in retired_identities
    fingerprint TEXT NOT NULL UNIQUE,
    key_type TEXT NOT NULL DEFAULT '',
    ssh_user TEXT,
    last_address TEXT NOT NULL DEFAULT '',
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- a new pending key that arrived from the last address of this (known) device
    same_address_as INTEGER REFERENCES devices (id) ON DELETE SET NULL,
    decided_at INTEGER,
    decided_by TEXT NOT NULL DEFAULT '',
    -- JSON array of strings from the device's last <hello>
    capabilities TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX devices_last_address ON devices (last_address);
CREATE INDEX devices_same_address_as ON devices (same_address_as);

-- Fingerprints a device had before an operator re-keyed it. They are no longer trusted: a contact with one of
-- them creates a new pending device.
CREATE TABLE retired_identities (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    key_type TEXT NOT NULL DEFAULT '',
    retired_at INTEGER NOT NULL
);
CREATE INDEX retired_identities_device ON retired_identities (device_id);
CREATE INDEX retired_identities_fingerprint ON retired_identities (fingerprint);

-- Listener instances; a session counts as live only while its listener's heartbeat is fresh.
CREATE TABLE listeners (
    id TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    listener_id TEXT NOT NULL REFERENCES listeners (id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, listener_id)
);
CREATE INDEX sessions_listener ON sessions (listener_id);

-- Append-only log. device_name/fingerprint/address are copied text so that the history stays readable after
-- the device is forgotten (device_id then becomes NULL).
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    device_id INTEGER REFERENCES devices (id) ON DELETE SET NULL,
    device_name TEXT NOT NULL DEFAULT '',
    connection_id TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_device ON events (device_id);
CREATE INDEX events_at ON events (at);

-- Only device_id may change: the ON DELETE SET NULL above, and re-attribution of a pending key's contacts to
-- the device that a rekey moves onto that key. Everything else is history and stays as written.
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
WHEN NEW.id IS NOT OLD.id OR NEW.at IS NOT OLD.at OR NEW.kind IS NOT OLD.kind
    OR NEW.device_name IS NOT OLD.device_name OR NEW.connection_id IS NOT OLD.connection_id
    OR NEW.address IS NOT OLD.address OR NEW.fingerprint IS NOT OLD.fingerprint OR NEW.detail IS NOT OLD.detail
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

-- Public views: documented in schemas/sql/README.md, columns only ever added.
-- A session is live while its listener's heartbeat is at most 15 s old (SqliteInventory.h: kHeartbeatWindow).
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
    live.listener_id AS listener_id
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

CREATE VIEW v_events AS
SELECT
    e.id AS id,
    strftime('%Y-%m-%dT%H:%M:%S', e.at / 1000, 'unixepoch') || '.' || substr('00' || (e.at % 1000), -3) || 'Z' AS at,
    e.at AS at_ms,
    e.kind AS kind,
    e.device_id AS device_id,
    e.device_name AS device_name,
    e.connection_id AS connection_id,
    e.address AS address,
    e.fingerprint AS fingerprint,
    e.detail AS detail
FROM events e;
