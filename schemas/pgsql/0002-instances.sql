-- callhome inventory on PostgreSQL, schema version 2: several callhomed instances on one inventory (as SQLite's
-- schemas/sql/0009-instances.sql). A session opened or re-opened by any listener is a change of its device in the
-- change log (so the instance that held it before learns it), and each listener records where its control API can
-- be reached by the other instances ("HOST:PORT"; empty: none).
CREATE FUNCTION callhome_session_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1128810838, 1);
    INSERT INTO device_changes (device_id) VALUES (NEW.device_id);
    RETURN NEW;
END $$;
CREATE TRIGGER device_changes_session_insert AFTER INSERT ON sessions
FOR EACH ROW EXECUTE FUNCTION callhome_session_changed();
CREATE TRIGGER device_changes_session_update AFTER UPDATE OF started_at ON sessions
FOR EACH ROW EXECUTE FUNCTION callhome_session_changed();

ALTER TABLE listeners ADD COLUMN control_endpoint text NOT NULL DEFAULT '';
