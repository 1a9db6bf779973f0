-- A booking the marketplace no longer waited for when it was confirmed (404/410 on
-- confirmInsert) is its own terminal state, 'gone': its appointment is in the diary for the
-- practice to check. SQLite cannot change a CHECK constraint in place, so both outbox tables
-- are rebuilt (events first re-pointed at the new table, so dropping the old one deletes none).
CREATE TABLE bookings_new (
    booking_id          TEXT    NOT NULL PRIMARY KEY,
    link_id             BLOB    NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    state               TEXT    NOT NULL CHECK (state IN
                            ('received', 'patient_resolved', 'inserted', 'confirmed', 'rejected',
                             'gone')),
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
    updated_at          INTEGER NOT NULL,
    cancelled_at        INTEGER,
    claim_epoch         INTEGER,
    market_practice_id  TEXT
);
INSERT INTO bookings_new (booking_id, link_id, state, request, attempts, next_attempt_at,
    claimed_by, claim_until, pms_patient_id, pms_appointment_id, match_decision, reject_reason,
    last_error, created_at, updated_at, cancelled_at, claim_epoch, market_practice_id)
SELECT booking_id, link_id, state, request, attempts, next_attempt_at, claimed_by, claim_until,
    pms_patient_id, pms_appointment_id, match_decision, reject_reason, last_error, created_at,
    updated_at, cancelled_at, claim_epoch, market_practice_id
FROM bookings;

CREATE TABLE booking_events_new (
    seq          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    booking_id   TEXT    NOT NULL REFERENCES bookings_new (booking_id) ON DELETE CASCADE,
    from_state   TEXT,
    to_state     TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    at           INTEGER NOT NULL
);
INSERT INTO booking_events_new (seq, booking_id, from_state, to_state, reason, at)
SELECT seq, booking_id, from_state, to_state, reason, at FROM booking_events;

DROP TABLE booking_events;
DROP TABLE bookings;
ALTER TABLE bookings_new RENAME TO bookings;
ALTER TABLE booking_events_new RENAME TO booking_events;

CREATE INDEX bookings_due ON bookings (next_attempt_at)
    WHERE state IN ('received', 'patient_resolved', 'inserted');
CREATE INDEX bookings_link ON bookings (link_id, created_at);
CREATE INDEX booking_events_booking ON booking_events (booking_id, seq);
