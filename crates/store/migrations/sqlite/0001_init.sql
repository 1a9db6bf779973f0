-- slotbridge store, SQLite schema. Instants are epoch microseconds (INTEGER); days are
-- ISO dates (TEXT, YYYY-MM-DD); UUIDs are 16-byte BLOBs; booleans are 0/1.

-- A link joins one PMS site (slug + API key) to one marketplace practice (id + key).
-- Secrets are AES-256-GCM sealed: key id + 96-bit nonce + ciphertext (with tag).
CREATE TABLE links (
    id                          BLOB    NOT NULL PRIMARY KEY,
    site_slug                   TEXT    NOT NULL,
    pms_api_key_key_id          TEXT    NOT NULL,
    pms_api_key_nonce           BLOB    NOT NULL,
    pms_api_key_ciphertext      BLOB    NOT NULL,
    market_practice_id          TEXT    NOT NULL,
    market_practice_key_key_id  TEXT    NOT NULL,
    market_practice_key_nonce   BLOB    NOT NULL,
    market_practice_key_ciphertext BLOB NOT NULL,
    enabled                     INTEGER NOT NULL DEFAULT 1,
    horizon_days                INTEGER NOT NULL DEFAULT 30 CHECK (horizon_days BETWEEN 1 AND 90),
    generation                  INTEGER NOT NULL DEFAULT 1,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
);
CREATE INDEX links_site_slug ON links (site_slug);
-- One enabled link per marketplace practice.
CREATE UNIQUE INDEX links_active_practice ON links (market_practice_id) WHERE enabled;

-- What was last published per (resource, day): only changed pairs are re-sent.
CREATE TABLE publish_state (
    link_id       BLOB    NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    resource_id   TEXT    NOT NULL,
    day           TEXT    NOT NULL,
    content_hash  INTEGER NOT NULL,
    published_at  INTEGER NOT NULL,
    PRIMARY KEY (link_id, resource_id, day)
) WITHOUT ROWID;

-- Hashes of whole-practice configuration last sent (resources, appointment types, liveness).
CREATE TABLE link_config_hashes (
    link_id       BLOB    NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL,
    content_hash  INTEGER NOT NULL,
    recorded_at   INTEGER NOT NULL,
    PRIMARY KEY (link_id, kind)
) WITHOUT ROWID;

-- Per-link synchronisation state, shown by the console and used by the workers.
CREATE TABLE sync_state (
    link_id             BLOB    NOT NULL PRIMARY KEY REFERENCES links (id) ON DELETE CASCADE,
    last_pms_read_at    INTEGER,
    last_publish_at     INTEGER,
    last_poll_at        INTEGER,
    last_error_kind     TEXT,
    last_error_message  TEXT,
    last_error_at       INTEGER,
    change_cursor       TEXT,
    consent             TEXT    NOT NULL DEFAULT 'unknown',
    health_flags        TEXT    NOT NULL DEFAULT '[]',
    updated_at          INTEGER NOT NULL
);

-- Every marketplace request we received, once (idempotent on request id).
CREATE TABLE market_requests (
    request_id   TEXT    NOT NULL PRIMARY KEY,
    kind         TEXT    NOT NULL,
    link_id      BLOB,
    received_at  INTEGER NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('received', 'handled')),
    handled_at   INTEGER,
    outcome      TEXT,
    detail       TEXT
);
CREATE INDEX market_requests_received ON market_requests (received_at);
CREATE INDEX market_requests_link ON market_requests (link_id, received_at);

-- The booking outbox: one row per marketplace booking, driven through its state machine.
CREATE TABLE bookings (
    booking_id          TEXT    NOT NULL PRIMARY KEY,
    link_id             BLOB    NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    state               TEXT    NOT NULL CHECK (state IN
                            ('received', 'patient_resolved', 'inserted', 'confirmed', 'rejected')),
    request             TEXT    NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     INTEGER NOT NULL,
    claimed_by          TEXT,
    claim_until         INTEGER,
    pms_patient_id      TEXT,
    pms_appointment_id  TEXT,
    match_decision      TEXT,
    reject_reason       TEXT,
    last_error          TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX bookings_due ON bookings (next_attempt_at)
    WHERE state IN ('received', 'patient_resolved', 'inserted');
CREATE INDEX bookings_link ON bookings (link_id, created_at);

-- Every booking state change, with its reason.
CREATE TABLE booking_events (
    seq          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    booking_id   TEXT    NOT NULL REFERENCES bookings (booking_id) ON DELETE CASCADE,
    from_state   TEXT,
    to_state     TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    at           INTEGER NOT NULL
);
CREATE INDEX booking_events_booking ON booking_events (booking_id, seq);

-- Which node works on which link. One row per link; node_id NULL when free.
CREATE TABLE link_leases (
    link_id      BLOB    NOT NULL PRIMARY KEY REFERENCES links (id) ON DELETE CASCADE,
    node_id      TEXT,
    expires_at   INTEGER,
    acquired_at  INTEGER
);
CREATE INDEX link_leases_node ON link_leases (node_id);

CREATE TABLE node_heartbeats (
    node_id       TEXT    NOT NULL PRIMARY KEY,
    started_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);

-- Webhook payload ids already seen (duplicate deliveries are ignored).
CREATE TABLE seen_payloads (
    payload_id   TEXT    NOT NULL PRIMARY KEY,
    received_at  INTEGER NOT NULL
);
CREATE INDEX seen_payloads_received ON seen_payloads (received_at);
