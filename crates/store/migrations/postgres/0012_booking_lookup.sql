-- Booking look-up (docs/console.md, "Booking look-up"): by PMS appointment id, and by the
-- patient's surname without storing it in clear. `surname_hash` is a blind index: hex of
-- HMAC-SHA256 of the normalised surname under a key derived from the master key (the request
-- itself stays sealed); '' when the request names no surname or was purged; NULL until indexed
-- (rows written before this migration are indexed when the store opens).
ALTER TABLE bookings ADD COLUMN surname_hash TEXT;
CREATE INDEX bookings_surname ON bookings (link_id, surname_hash, created_at);
CREATE INDEX bookings_appointment ON bookings (link_id, pms_appointment_id);
CREATE INDEX bookings_unindexed ON bookings (booking_id) WHERE surname_hash IS NULL;
