-- A booking the marketplace no longer waited for when it was confirmed (404/410 on
-- confirmInsert) is its own terminal state, 'gone': its appointment is in the diary for the
-- practice to check.
ALTER TABLE bookings DROP CONSTRAINT bookings_state_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_state_check CHECK (state IN
    ('received', 'patient_resolved', 'inserted', 'confirmed', 'rejected', 'gone'));
