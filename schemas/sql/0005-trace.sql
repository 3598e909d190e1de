-- callhome inventory, schema version 5: the operation trace (RFC 7922 traceability). Self-contained: it reads no other migration's
-- objects but devices (id).
-- Applied by lib/inventory in one transaction together with the schema version bump.
--
-- One row per NETCONF operation callhomed sent to a device on a client's behalf (the control API today; hooks and
-- staged edits later): who asked, under which secondary id, what was done to which device, when, and how it ended.
-- Never the request's body: its size and SHA-256 only. Rows are append-only (triggers below); they are deleted only
-- by retention (Inventory::pruneTrace), which opens a window in trace_prune inside its own transaction.

CREATE TABLE trace (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    answered_at INTEGER NOT NULL,
    -- from the operation's hand-over to the device's queue to its outcome
    duration_ms INTEGER NOT NULL DEFAULT 0,
    -- 'api' (control API); later 'hook' and 'staged'
    source TEXT NOT NULL DEFAULT 'api',
    -- "uid 1000 (alice) pid 4242" or "cert CN=nms SHA256:..."
    client TEXT NOT NULL DEFAULT '',
    client_uid INTEGER,
    client_user TEXT NOT NULL DEFAULT '',
    client_pid INTEGER,
    client_cert_subject TEXT NOT NULL DEFAULT '',
    client_cert_fingerprint TEXT NOT NULL DEFAULT '',
    trace_id TEXT NOT NULL DEFAULT '',
    device_id INTEGER REFERENCES devices (id) ON DELETE SET NULL,
    device_name TEXT NOT NULL DEFAULT '',
    connection_id TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    operation TEXT NOT NULL,
    datastore TEXT NOT NULL DEFAULT '',
    -- ok, rpc-error, timeout, transport-error, reply-too-large, refused, cancelled
    outcome TEXT NOT NULL,
    error_tag TEXT NOT NULL DEFAULT '',
    error_path TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    request_bytes INTEGER NOT NULL DEFAULT 0,
    request_sha256 TEXT NOT NULL DEFAULT ''
);
CREATE INDEX trace_received ON trace (received_at);
CREATE INDEX trace_device ON trace (device_id);
CREATE INDEX trace_trace_id ON trace (trace_id) WHERE trace_id <> '';

-- Retention's window: while a row is here (only inside Inventory::pruneTrace's transaction), trace rows received
-- before `before` may be deleted. Nothing else may delete them.
CREATE TABLE trace_prune (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    before INTEGER NOT NULL
);

-- Only device_id may change (the ON DELETE SET NULL of a forgotten device); everything else stays as written.
CREATE TRIGGER trace_append_only_update BEFORE UPDATE ON trace
WHEN NEW.id IS NOT OLD.id OR NEW.received_at IS NOT OLD.received_at OR NEW.answered_at IS NOT OLD.answered_at
    OR NEW.duration_ms IS NOT OLD.duration_ms OR NEW.source IS NOT OLD.source OR NEW.client IS NOT OLD.client
    OR NEW.client_uid IS NOT OLD.client_uid OR NEW.client_user IS NOT OLD.client_user
    OR NEW.client_pid IS NOT OLD.client_pid OR NEW.client_cert_subject IS NOT OLD.client_cert_subject
    OR NEW.client_cert_fingerprint IS NOT OLD.client_cert_fingerprint OR NEW.trace_id IS NOT OLD.trace_id
    OR NEW.device_name IS NOT OLD.device_name OR NEW.connection_id IS NOT OLD.connection_id
    OR NEW.message_id IS NOT OLD.message_id OR NEW.operation IS NOT OLD.operation
    OR NEW.datastore IS NOT OLD.datastore OR NEW.outcome IS NOT OLD.outcome OR NEW.error_tag IS NOT OLD.error_tag
    OR NEW.error_path IS NOT OLD.error_path OR NEW.detail IS NOT OLD.detail
    OR NEW.request_bytes IS NOT OLD.request_bytes OR NEW.request_sha256 IS NOT OLD.request_sha256
BEGIN
    SELECT RAISE(ABORT, 'trace records are append-only');
END;

CREATE TRIGGER trace_append_only_delete BEFORE DELETE ON trace
WHEN NOT EXISTS (SELECT 1 FROM trace_prune p WHERE OLD.received_at < p.before)
BEGIN
    SELECT RAISE(ABORT, 'trace records are append-only (deleted only by retention)');
END;

-- Public view: documented in schemas/sql/README.md, columns only ever added.
CREATE VIEW v_trace AS
SELECT
    t.id AS id,
    strftime('%Y-%m-%dT%H:%M:%S', t.received_at / 1000, 'unixepoch') || '.' || substr('00' || (t.received_at % 1000), -3) || 'Z' AS received_at,
    t.received_at AS received_at_ms,
    strftime('%Y-%m-%dT%H:%M:%S', t.answered_at / 1000, 'unixepoch') || '.' || substr('00' || (t.answered_at % 1000), -3) || 'Z' AS answered_at,
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
