-- callhome inventory, schema version 2: devices calling home over TLS (IEEE 802.1AR identities).
-- Applied by lib/inventory in one transaction together with the schema version bump, with foreign-key enforcement
-- switched off around it and PRAGMA foreign_key_check run before the commit (SqliteInventory.cpp: migrate()).
--
-- A TLS device verified to a manufacturer's anchor is identified by (manufacturer, serial); its certificate
-- fingerprint changes on renewal. A device pre-provisioned from shipping data ("expected") exists before it ever
-- called home, so it has no fingerprint and no first/last seen yet: those columns become nullable. SQLite cannot
-- drop a NOT NULL constraint with ALTER TABLE, so the table is rebuilt as https://www.sqlite.org/lang_altertable.html
-- ("Making Other Kinds Of Table Schema Changes") describes: create the new table, copy, drop the old one, rename
-- the new one to the old name, recreate its indexes and the views that use it. The other tables' foreign keys name
-- "devices" and point at the rebuilt table again after the rename (ids are copied unchanged). The statements are
-- portable SQL (PostgreSQL has partial unique indexes and ALTER TABLE ... RENAME TO too).

-- Views that read devices must go before the table does: renaming a table re-checks every view in the schema.
DROP VIEW v_devices;

CREATE TABLE devices_new (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'revoked')),
    transport TEXT NOT NULL CHECK (transport IN ('ssh', 'tls')),
    -- the current identity (SSH host key, or TLS leaf certificate); earlier SSH keys live in retired_identities.
    -- NULL only for a pre-provisioned TLS device that has not called home yet (identified by manufacturer, serial).
    fingerprint TEXT UNIQUE,
    key_type TEXT NOT NULL DEFAULT '',
    ssh_user TEXT,
    last_address TEXT NOT NULL DEFAULT '',
    -- NULL until the first call home (pre-provisioned devices)
    first_seen INTEGER,
    last_seen INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- a new pending identity that arrived from the last address of this (known) device
    same_address_as INTEGER REFERENCES devices (id) ON DELETE SET NULL,
    decided_at INTEGER,
    decided_by TEXT NOT NULL DEFAULT '',
    -- JSON array of strings from the device's last <hello>
    capabilities TEXT NOT NULL DEFAULT '[]',
    -- TLS: trust-store manufacturer whose anchor verified the chain ('' for a pinned self-signed certificate and
    -- for SSH devices), the IEEE 802.1AR serial number, and the leaf certificate last presented (RFC 2253 text)
    manufacturer TEXT NOT NULL DEFAULT '',
    serial TEXT NOT NULL DEFAULT '',
    cert_subject TEXT NOT NULL DEFAULT '',
    cert_issuer TEXT NOT NULL DEFAULT '',
    CHECK (fingerprint IS NOT NULL OR (transport = 'tls' AND serial <> '')),
    CHECK ((first_seen IS NULL) = (last_seen IS NULL))
);

INSERT INTO devices_new (id, name, state, transport, fingerprint, key_type, ssh_user, last_address, first_seen,
    last_seen, attempts, same_address_as, decided_at, decided_by, capabilities)
SELECT id, name, state, transport, fingerprint, key_type, ssh_user, last_address, first_seen,
    last_seen, attempts, same_address_as, decided_at, decided_by, capabilities
FROM devices;

DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;

CREATE INDEX devices_last_address ON devices (last_address);
CREATE INDEX devices_same_address_as ON devices (same_address_as);
-- One device per manufacturer serial; SSH devices and pinned self-signed certificates have no serial.
CREATE UNIQUE INDEX devices_manufacturer_serial ON devices (manufacturer, serial) WHERE serial <> '';
-- resolve() matches a bare serial too
CREATE INDEX devices_serial ON devices (serial);

-- Public view: the columns of schema version 1 unchanged and in order, then those added in version 2.
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
    d.cert_issuer AS cert_issuer
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
