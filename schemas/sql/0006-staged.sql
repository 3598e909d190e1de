-- callhome inventory, schema version 6: staged configuration (edits queued for devices that are offline, pending or
-- expected, applied by callhomed in order when the device's NETCONF session is up). Self-contained: it reads no
-- other migration's objects but devices (id).
-- Applied by lib/inventory in one transaction together with the schema version bump.
--
-- One row per staged <edit-config>, in staging order (id). The content is kept as the operator gave it: XML (the
-- content of <config>), or RFC 7951 JSON, which needs the device's YANG context to become XML and is converted when
-- it is applied. Items of a forgotten device go with it (ON DELETE CASCADE): they were meant for that identity.
CREATE TABLE staged (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    -- who staged it: "uid 1000 (alice)", "cert CN=nms", "operator"
    created_by TEXT NOT NULL DEFAULT 'operator',
    target TEXT NOT NULL CHECK (target IN ('running', 'candidate')),
    -- 1: <commit/> after the edit (candidate only)
    do_commit INTEGER NOT NULL DEFAULT 0 CHECK (do_commit IN (0, 1) AND (do_commit = 0 OR target = 'candidate')),
    format TEXT NOT NULL CHECK (format IN ('xml', 'json')),
    content TEXT NOT NULL,
    -- queued → applying → applied | failed; failed → queued (retry); queued | failed → dropped (unstage)
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'applying', 'applied', 'failed', 'dropped')),
    updated_at INTEGER NOT NULL,
    -- times it was sent to the device
    attempts INTEGER NOT NULL DEFAULT 0,
    -- the last attempt: connection, message-id of the <edit-config>, the device's first <rpc-error>, or why
    connection_id TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    error_tag TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX staged_device ON staged (device_id, id);
-- what callhomed looks for: the devices with something to apply
CREATE INDEX staged_open ON staged (device_id, id) WHERE state IN ('queued', 'applying', 'failed');

-- Public view: documented in schemas/sql/README.md, columns only ever added.
CREATE VIEW v_staged AS
SELECT
    s.id AS id,
    s.device_id AS device_id,
    d.name AS device_name,
    strftime('%Y-%m-%dT%H:%M:%S', s.created_at / 1000, 'unixepoch') || '.' || substr('00' || (s.created_at % 1000), -3) || 'Z' AS created_at,
    s.created_by AS created_by,
    s.target AS target,
    s.do_commit AS commit_after,
    s.format AS format,
    s.content AS content,
    s.state AS state,
    strftime('%Y-%m-%dT%H:%M:%S', s.updated_at / 1000, 'unixepoch') || '.' || substr('00' || (s.updated_at % 1000), -3) || 'Z' AS updated_at,
    s.attempts AS attempts,
    s.connection_id AS connection_id,
    s.message_id AS message_id,
    s.error_tag AS error_tag,
    s.error_message AS error_message,
    s.detail AS detail
FROM staged s
JOIN devices d ON d.id = s.device_id;
