-- callhome inventory, schema version 4: the device change log, and event retention.
-- Applied by lib/inventory in one transaction together with the schema version bump.
--
-- device_changes: one row whenever a device appears, disappears, or changes what the listener decides on (state,
-- name, identity, SSH user). Every writer — callhomectl, the control API, scripts using SQL, callhomed itself — goes
-- through these triggers, so callhomed learns which devices changed by reading the rows after the last one it saw,
-- instead of re-reading the whole inventory. Contact bookkeeping (attempts, last seen, capabilities) is not a change.
-- The table is private; callhomed deletes rows older than a few minutes.

CREATE TABLE device_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id INTEGER NOT NULL,
    -- milliseconds since the Unix epoch, UTC
    at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);

CREATE TRIGGER device_changes_insert AFTER INSERT ON devices
BEGIN
    INSERT INTO device_changes (device_id) VALUES (NEW.id);
END;

CREATE TRIGGER device_changes_update AFTER UPDATE ON devices
WHEN NEW.state IS NOT OLD.state OR NEW.name IS NOT OLD.name
    OR NEW.fingerprint IS NOT OLD.fingerprint OR NEW.ssh_user IS NOT OLD.ssh_user OR NEW.transport IS NOT OLD.transport
    OR NEW.manufacturer IS NOT OLD.manufacturer OR NEW.serial IS NOT OLD.serial OR NEW.decided_by IS NOT OLD.decided_by
BEGIN
    INSERT INTO device_changes (device_id) VALUES (NEW.id);
END;

CREATE TRIGGER device_changes_delete AFTER DELETE ON devices
BEGIN
    INSERT INTO device_changes (device_id) VALUES (OLD.id);
END;

-- Event retention. Events stay append-only: the only deletion allowed is callhomed's retention job, which in one
-- transaction writes the cut-off into event_pruning, deletes the events older than it, removes the row and
-- appends an `events-pruned` event. The cut-off must be at least an hour in the past, so no row can be used to
-- delete recent history; any other DELETE still fails with 'events are append-only'.
CREATE TABLE event_pruning (
    cutoff INTEGER NOT NULL
);

CREATE TRIGGER event_pruning_recent BEFORE INSERT ON event_pruning
WHEN NEW.cutoff > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - 3600000
BEGIN
    SELECT RAISE(ABORT, 'event retention may only delete events older than one hour');
END;

DROP TRIGGER events_append_only_delete;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
WHEN NOT EXISTS (SELECT 1 FROM event_pruning WHERE OLD.at < cutoff)
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
