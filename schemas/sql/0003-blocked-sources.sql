-- callhome inventory, schema version 3: blocked sources (RFC 8071 section 9).
-- Applied by lib/inventory in one transaction together with the schema version bump.
--
-- callhomed blocks a source (an IPv4 address, or an IPv6 /64, as lib/common/Address.h keys them) whose handshakes
-- failed too often within a window, for a while. The block is kept here so that it survives a restart and so that
-- operators can see and lift it with callhomectl while callhomed runs (callhomed notices the change and follows).
-- A row whose `until` has passed is no longer a block; callhomed deletes such rows when it writes the next block.

CREATE TABLE blocked_sources (
    -- "192.0.2.7" or "2001:db8:1:2::/64"
    source TEXT PRIMARY KEY,
    since INTEGER NOT NULL,
    until INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    -- failed handshakes counted in the window that led to the block
    failures INTEGER NOT NULL DEFAULT 0,
    CHECK (until >= since)
);
CREATE INDEX blocked_sources_until ON blocked_sources (until);

-- Public view: the sources blocked now (documented in schemas/sql/README.md, columns only ever added).
CREATE VIEW v_blocked_sources AS
SELECT
    b.source AS source,
    strftime('%Y-%m-%dT%H:%M:%S', b.since / 1000, 'unixepoch') || '.' || substr('00' || (b.since % 1000), -3) || 'Z' AS since,
    strftime('%Y-%m-%dT%H:%M:%S', b.until / 1000, 'unixepoch') || '.' || substr('00' || (b.until % 1000), -3) || 'Z' AS until,
    b.until AS until_ms,
    b.reason AS reason,
    b.failures AS failures
FROM blocked_sources b
WHERE b.until > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER);
