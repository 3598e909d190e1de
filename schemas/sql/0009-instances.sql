-- callhome inventory, schema version 9: several callhomed instances on one inventory.
-- Applied by lib/inventory in one transaction together with the schema version bump.
--
-- A device is held by one instance at a time. When a device's new session comes up on instance B while A still has a
-- session row for it (the device reconnected through a load balancer to another instance), A must learn it: a
-- session opened or re-opened by any listener is a change of its device in the change log, which every instance
-- follows, and A closes its own stale session when the device's newest live session is another listener's.
CREATE TRIGGER device_changes_session_insert AFTER INSERT ON sessions
BEGIN
    INSERT INTO device_changes (device_id) VALUES (NEW.device_id);
END;

CREATE TRIGGER device_changes_session_update AFTER UPDATE OF started_at ON sessions
BEGIN
    INSERT INTO device_changes (device_id) VALUES (NEW.device_id);
END;

-- Each instance records where its control API can be reached by the other instances (config control/peer/advertise:
-- "HOST:PORT" of its TCP/TLS control listener; empty: none), so that a request for a device held by another instance
-- is forwarded to the holder.
ALTER TABLE listeners ADD COLUMN control_endpoint TEXT NOT NULL DEFAULT '';
