-- callhome inventory on PostgreSQL, schema version 1: the same tables, views and rules as SQLite's schemas/sql/0001
-- to 0007, in one migration, with capability lists stored once each (capability_sets, as SQLite's 0008 does).
-- Applied by lib/inventory/PostgresInventory.cpp in one transaction together with the schema version, under an
-- advisory lock, so that two callhomed starting together do not both migrate.
-- All times are bigint milliseconds since the Unix epoch, UTC (as in SQLite); the public views show them as
-- ISO 8601 text, in the same columns with the same meanings as SQLite's views (schemas/sql/README.md).
-- Text that is matched or ordered bytewise (names, fingerprints, serials, sources) uses the "C" collation, as
-- SQLite's BINARY does, whatever the database's default collation.

-- What marks a database as a callhome inventory, and its schema version (PostgresInventory refuses a database with
-- other tables but no such row, and one whose version is newer than it knows).
CREATE TABLE callhome_schema (
    application text NOT NULL CHECK (application = 'callhome inventory'),
    version integer NOT NULL
);
CREATE UNIQUE INDEX callhome_schema_one_row ON callhome_schema ((true));
INSERT INTO callhome_schema (application, version) VALUES ('callhome inventory', 0);
COMMENT ON TABLE callhome_schema IS 'callhome inventory: application marker and schema version';

-- milliseconds since the Unix epoch, now (the statement's time)
CREATE FUNCTION callhome_now_ms() RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT (extract(epoch FROM statement_timestamp()) * 1000)::bigint $$;
-- milliseconds since the Unix epoch as ISO 8601 UTC text with milliseconds, e.g. 2026-01-02T03:04:05.678Z
CREATE FUNCTION callhome_iso(ms bigint) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT to_char(to_timestamp(ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '.'
       || lpad((ms % 1000)::text, 3, '0') || 'Z' $$;

-- Each distinct capability list (the JSON array text of a device's last <hello>) once: a fleet has few. The hash
-- is unique instead of the text, which can be longer than a btree index entry may be.
CREATE TABLE capability_sets (
    id bigserial PRIMARY KEY,
    capabilities text NOT NULL,
    hash text NOT NULL UNIQUE
);

CREATE TABLE devices (
    id bigserial PRIMARY KEY,
    name text COLLATE "C" UNIQUE,
    state text NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'revoked')),
    transport text NOT NULL CHECK (transport IN ('ssh', 'tls')),
    -- the current identity (SSH host key, or TLS leaf certificate); earlier SSH keys live in retired_identities.
    -- NULL only for a pre-provisioned TLS device that has not called home yet (identified by manufacturer, serial).
    fingerprint text COLLATE "C" UNIQUE,
    key_type text NOT NULL DEFAULT '',
    ssh_user text,
    last_address text NOT NULL DEFAULT '',
    -- NULL until the first call home (pre-provisioned devices)
    first_seen bigint,
    last_seen bigint,
    attempts bigint NOT NULL DEFAULT 0,
    -- a new pending identity that arrived from the last address of this (known) device
    same_address_as bigint REFERENCES devices (id) ON DELETE SET NULL,
    decided_at bigint,
    decided_by text NOT NULL DEFAULT '',
    -- the device's last <hello>; NULL: none yet (v_devices shows '[]')
    capability_set bigint REFERENCES capability_sets (id),
    -- TLS: trust-store manufacturer whose anchor verified the chain ('' for a pinned self-signed certificate and
    -- for SSH devices), the IEEE 802.1AR serial number, and the leaf certificate last presented (RFC 2253 text)
    manufacturer text COLLATE "C" NOT NULL DEFAULT '',
    serial text COLLATE "C" NOT NULL DEFAULT '',
    cert_subject text NOT NULL DEFAULT '',
    cert_issuer text NOT NULL DEFAULT '',
    -- per-device SSH credentials: whether the credentials store has a password / private key of the device's own,
    -- and whether the fleet-wide password may be offered to it (the secrets are never in the inventory)
    password_set integer NOT NULL DEFAULT 0 CHECK (password_set IN (0, 1)),
    key_set integer NOT NULL DEFAULT 0 CHECK (key_set IN (0, 1)),
    password_fallback integer NOT NULL DEFAULT 0 CHECK (password_fallback IN (0, 1)),
    CHECK (fingerprint IS NOT NULL OR (transport = 'tls' AND serial <> '')),
    CHECK ((first_seen IS NULL) = (last_seen IS NULL))
);
CREATE INDEX devices_last_address ON devices (last_address);
CREATE INDEX devices_same_address_as ON devices (same_address_as);
CREATE UNIQUE INDEX devices_manufacturer_serial ON devices (manufacturer, serial) WHERE serial <> '';
CREATE INDEX devices_serial ON devices (serial);
CREATE INDEX devices_capability_set ON devices (capability_set);

-- Fingerprints a device had before an operator re-keyed it. They are no longer trusted: a contact with one of
-- them creates a new pending device.
CREATE TABLE retired_identities (
    id bigserial PRIMARY KEY,
    device_id bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    fingerprint text COLLATE "C" NOT NULL,
    key_type text NOT NULL DEFAULT '',
    retired_at bigint NOT NULL
);
CREATE INDEX retired_identities_device ON retired_identities (device_id);
CREATE INDEX retired_identities_fingerprint ON retired_identities (fingerprint);

-- Listener instances; a session counts as live only while its listener's heartbeat is fresh (15 s).
CREATE TABLE listeners (
    id text COLLATE "C" PRIMARY KEY,
    started_at bigint NOT NULL,
    heartbeat_at bigint NOT NULL
);

CREATE TABLE sessions (
    device_id bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    listener_id text COLLATE "C" NOT NULL REFERENCES listeners (id) ON DELETE CASCADE,
    started_at bigint NOT NULL,
    PRIMARY KEY (device_id, listener_id)
);
CREATE INDEX sessions_listener ON sessions (listener_id);

-- Append-only log. device_name/fingerprint/address are copied text so that the history stays readable after
-- the device is forgotten (device_id then becomes NULL).
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    at bigint NOT NULL,
    kind text NOT NULL,
    device_id bigint REFERENCES devices (id) ON DELETE SET NULL,
    device_name text NOT NULL DEFAULT '',
    connection_id text NOT NULL DEFAULT '',
    address text NOT NULL DEFAULT '',
    fingerprint text NOT NULL DEFAULT '',
    detail text NOT NULL DEFAULT ''
);
CREATE INDEX events_device ON events (device_id);
CREATE INDEX events_at ON events (at);

-- Event retention: the only deletion allowed is callhomed's retention job, which in one transaction writes a
-- cut-off (at least an hour old) here, deletes the events older than it, removes the row and appends an
-- `events-pruned` event.
CREATE TABLE event_pruning (
    cutoff bigint NOT NULL
);

CREATE FUNCTION callhome_event_pruning_recent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.cutoff > callhome_now_ms() - 3600000 THEN
        RAISE EXCEPTION 'event retention may only delete events older than one hour';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER event_pruning_recent BEFORE INSERT ON event_pruning
FOR EACH ROW EXECUTE FUNCTION callhome_event_pruning_recent();

-- Only device_id may change: ON DELETE SET NULL, and re-attribution of a pending key's contacts by rekey.
CREATE FUNCTION callhome_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.id IS DISTINCT FROM OLD.id OR NEW.at IS DISTINCT FROM OLD.at OR NEW.kind IS DISTINCT FROM OLD.kind
            OR NEW.device_name IS DISTINCT FROM OLD.device_name OR NEW.connection_id IS DISTINCT FROM OLD.connection_id
            OR NEW.address IS DISTINCT FROM OLD.address OR NEW.fingerprint IS DISTINCT FROM OLD.fingerprint
            OR NEW.detail IS DISTINCT FROM OLD.detail THEN
            RAISE EXCEPTION 'events are append-only';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM event_pruning WHERE OLD.at < cutoff) THEN
            RAISE EXCEPTION 'events are append-only';
        END IF;
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'events are append-only';
END $$;
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
FOR EACH ROW EXECUTE FUNCTION callhome_events_append_only();
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
FOR EACH ROW EXECUTE FUNCTION callhome_events_append_only();
-- TRUNCATE skips row triggers: refused outright.
CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON events
FOR EACH STATEMENT EXECUTE FUNCTION callhome_events_append_only();

-- Blocked sources (RFC 8071 section 9): "192.0.2.7" or "2001:db8:1:2::/64".
CREATE TABLE blocked_sources (
    source text COLLATE "C" PRIMARY KEY,
    since bigint NOT NULL,
    until bigint NOT NULL,
    reason text NOT NULL DEFAULT '',
    failures bigint NOT NULL DEFAULT 0,
    CHECK (until >= since)
);
CREATE INDEX blocked_sources_until ON blocked_sources (until);

-- The device change log: one row whenever a device appears, disappears, or changes what the listener decides on
-- (state, name, identity, SSH user, credentials flags). callhomed reads the rows after the last one it saw; a
-- statement that adds rows notifies channel callhome_changes, so that every callhomed learns of it at once.
-- Writers take the inventory's write lock (advisory transaction lock 1128810838/1) before a row gets its seq, so
-- that rows commit in seq order and a reader that saw seq N never misses a later-committed smaller one.
CREATE TABLE device_changes (
    seq bigserial PRIMARY KEY,
    device_id bigint NOT NULL,
    at bigint NOT NULL DEFAULT callhome_now_ms()
);

CREATE FUNCTION callhome_device_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1128810838, 1);
    IF TG_OP = 'DELETE' THEN
        INSERT INTO device_changes (device_id) VALUES (OLD.id);
        RETURN OLD;
    END IF;
    INSERT INTO device_changes (device_id) VALUES (NEW.id);
    RETURN NEW;
END $$;
CREATE TRIGGER device_changes_insert AFTER INSERT ON devices
FOR EACH ROW EXECUTE FUNCTION callhome_device_changed();
CREATE TRIGGER device_changes_update AFTER UPDATE ON devices
FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM OLD.state OR NEW.name IS DISTINCT FROM OLD.name
    OR NEW.fingerprint IS DISTINCT FROM OLD.fingerprint OR NEW.ssh_user IS DISTINCT FROM OLD.ssh_user
    OR NEW.transport IS DISTINCT FROM OLD.transport OR NEW.manufacturer IS DISTINCT FROM OLD.manufacturer
    OR NEW.serial IS DISTINCT FROM OLD.serial OR NEW.decided_by IS DISTINCT FROM OLD.decided_by
    OR NEW.password_set IS DISTINCT FROM OLD.password_set OR NEW.key_set IS DISTINCT FROM OLD.key_set
    OR NEW.password_fallback IS DISTINCT FROM OLD.password_fallback)
EXECUTE FUNCTION callhome_device_changed();
CREATE TRIGGER device_changes_delete AFTER DELETE ON devices
FOR EACH ROW EXECUTE FUNCTION callhome_device_changed();

CREATE FUNCTION callhome_notify_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callhome_changes', '');
    RETURN NULL;
END $$;
CREATE TRIGGER device_changes_notify AFTER INSERT ON device_changes
FOR EACH STATEMENT EXECUTE FUNCTION callhome_notify_changes();

-- The operation trace (RFC 7922 traceability): append-only, deleted only by retention (Inventory::pruneTrace).
CREATE TABLE trace (
    id bigserial PRIMARY KEY,
    received_at bigint NOT NULL,
    answered_at bigint NOT NULL,
    duration_ms bigint NOT NULL DEFAULT 0,
    source text NOT NULL DEFAULT 'api',
    client text NOT NULL DEFAULT '',
    client_uid bigint,
    client_user text NOT NULL DEFAULT '',
    client_pid bigint,
    client_cert_subject text NOT NULL DEFAULT '',
    client_cert_fingerprint text NOT NULL DEFAULT '',
    trace_id text NOT NULL DEFAULT '',
    device_id bigint REFERENCES devices (id) ON DELETE SET NULL,
    device_name text NOT NULL DEFAULT '',
    connection_id text NOT NULL DEFAULT '',
    message_id text NOT NULL DEFAULT '',
    operation text NOT NULL,
    datastore text NOT NULL DEFAULT '',
    outcome text NOT NULL,
    error_tag text NOT NULL DEFAULT '',
    error_path text NOT NULL DEFAULT '',
    detail text NOT NULL DEFAULT '',
    request_bytes bigint NOT NULL DEFAULT 0,
    request_sha256 text NOT NULL DEFAULT ''
);
CREATE INDEX trace_received ON trace (received_at);
CREATE INDEX trace_device ON trace (device_id);
CREATE INDEX trace_trace_id ON trace (trace_id) WHERE trace_id <> '';

CREATE TABLE trace_prune (
    id integer PRIMARY KEY CHECK (id = 1),
    before bigint NOT NULL
);

CREATE FUNCTION callhome_trace_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- only device_id may change (the ON DELETE SET NULL of a forgotten device)
        IF (to_jsonb(NEW) - 'device_id') IS DISTINCT FROM (to_jsonb(OLD) - 'device_id') THEN
            RAISE EXCEPTION 'trace records are append-only';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM trace_prune p WHERE OLD.received_at < p.before) THEN
            RAISE EXCEPTION 'trace records are append-only (deleted only by retention)';
        END IF;
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'trace records are append-only (deleted only by retention)';
END $$;
CREATE TRIGGER trace_append_only_update BEFORE UPDATE ON trace
FOR EACH ROW EXECUTE FUNCTION callhome_trace_append_only();
CREATE TRIGGER trace_append_only_delete BEFORE DELETE ON trace
FOR EACH ROW EXECUTE FUNCTION callhome_trace_append_only();
CREATE TRIGGER trace_append_only_truncate BEFORE TRUNCATE ON trace
FOR EACH STATEMENT EXECUTE FUNCTION callhome_trace_append_only();

-- Staged configuration: one row per staged <edit-config>, in staging order (id).
CREATE TABLE staged (
    id bigserial PRIMARY KEY,
    device_id bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    created_by text NOT NULL DEFAULT 'operator',
    target text NOT NULL CHECK (target IN ('running', 'candidate')),
    do_commit integer NOT NULL DEFAULT 0 CHECK (do_commit IN (0, 1) AND (do_commit = 0 OR target = 'candidate')),
    format text NOT NULL CHECK (format IN ('xml', 'json')),
    content text NOT NULL,
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'applying', 'applied', 'failed', 'dropped')),
    updated_at bigint NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    connection_id text NOT NULL DEFAULT '',
    message_id text NOT NULL DEFAULT '',
    error_tag text NOT NULL DEFAULT '',
    error_message text NOT NULL DEFAULT '',
    detail text NOT NULL DEFAULT ''
);
CREATE INDEX staged_device ON staged (device_id, id);
CREATE INDEX staged_open ON staged (device_id, id) WHERE state IN ('queued', 'applying', 'failed');

-- Public views: the same columns, names and meanings as SQLite's (schemas/sql/README.md), only ever added to.
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
    callhome_iso(d.first_seen) AS first_seen,
    callhome_iso(d.last_seen) AS last_seen,
    d.attempts AS attempts,
    d.same_address_as AS same_address_as,
    callhome_iso(d.decided_at) AS decided_at,
    d.decided_by AS decided_by,
    COALESCE(c.capabilities, '[]') AS capabilities,
    CASE WHEN live.started_at IS NULL THEN 0 ELSE 1 END AS connected,
    callhome_iso(live.started_at) AS session_start,
    live.listener_id AS listener_id,
    d.manufacturer AS manufacturer,
    d.serial AS serial,
    d.cert_subject AS cert_subject,
    d.cert_issuer AS cert_issuer,
    d.password_set AS password_set,
    d.key_set AS key_set,
    d.password_fallback AS password_fallback
FROM devices d
LEFT JOIN capability_sets c ON c.id = d.capability_set
LEFT JOIN (
    SELECT DISTINCT ON (s.device_id) s.device_id AS device_id, s.listener_id AS listener_id,
        s.started_at AS started_at
    FROM sessions s
    JOIN listeners l ON l.id = s.listener_id
    WHERE l.heartbeat_at >= callhome_now_ms() - 15000
    ORDER BY s.device_id, s.started_at DESC, s.listener_id DESC
) live ON live.device_id = d.id;

CREATE VIEW v_events AS
SELECT
    e.id AS id,
    callhome_iso(e.at) AS at,
    e.at AS at_ms,
    e.kind AS kind,
    e.device_id AS device_id,
    e.device_name AS device_name,
    e.connection_id AS connection_id,
    e.address AS address,
    e.fingerprint AS fingerprint,
    e.detail AS detail
FROM events e;

CREATE VIEW v_blocked_sources AS
SELECT
    b.source AS source,
    callhome_iso(b.since) AS since,
    callhome_iso(b.until) AS until,
    b.until AS until_ms,
    b.reason AS reason,
    b.failures AS failures
FROM blocked_sources b
WHERE b.until > callhome_now_ms();

CREATE VIEW v_trace AS
SELECT
    t.id AS id,
    callhome_iso(t.received_at) AS received_at,
    t.received_at AS received_at_ms,
    callhome_iso(t.answered_at) AS answered_at,
    t.duration_ms AS duration_ms,
    t.source AS source,
    t.client AS client,
    t.client_uid AS client_uid,
    t.client_user AS client_user,
    t.client_pid AS client_pid,
    t.client_cert_subject AS client_cert_subject,
    t.client_cert_fingerprint AS client_cert_fingerprint,
    t.trace_id AS trace_id,
    t.device_id AS device_id,
    t.device_name AS device_name,
    t.connection_id AS connection_id,
    t.message_id AS message_id,
    t.operation AS operation,
    t.datastore AS datastore,
    t.outcome AS outcome,
    t.error_tag AS error_tag,
    t.error_path AS error_path,
    t.detail AS detail,
    t.request_bytes AS request_bytes,
    t.request_sha256 AS request_sha256
FROM trace t;

CREATE VIEW v_staged AS
SELECT
    s.id AS id,
    s.device_id AS device_id,
    d.name AS device_name,
    callhome_iso(s.created_at) AS created_at,
    s.created_by AS created_by,
    s.target AS target,
    s.do_commit AS commit_after,
    s.format AS format,
    s.content AS content,
    s.state AS state,
    callhome_iso(s.updated_at) AS updated_at,
    s.attempts AS attempts,
    s.connection_id AS connection_id,
    s.message_id AS message_id,
    s.error_tag AS error_tag,
    s.error_message AS error_message,
    s.detail AS detail
FROM staged s
JOIN devices d ON d.id = s.device_id;

-- callhomed also follows blocked sources (callhomectl unblock) and staged edits written by others.
CREATE TRIGGER blocked_sources_notify AFTER INSERT OR UPDATE OR DELETE ON blocked_sources
FOR EACH STATEMENT EXECUTE FUNCTION callhome_notify_changes();
CREATE TRIGGER staged_notify AFTER INSERT OR UPDATE OR DELETE ON staged
FOR EACH STATEMENT EXECUTE FUNCTION callhome_notify_changes();
