-- A confirmed online booking whose appointment was removed at the desk: when the cancellation
-- was reported to the marketplace (reported once; NULL while the booking stands).
ALTER TABLE bookings ADD COLUMN cancelled_at INTEGER;
