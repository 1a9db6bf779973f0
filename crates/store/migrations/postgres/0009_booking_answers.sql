-- What the marketplace was last told about a confirmed booking's appointment (a desk
-- cancellation, a patient who did not attend, or no change: pmsAppointmentChanges), and when.
-- And the outcome of a late answer the marketplace refused (it had auto-confirmed the booking
-- before the integration's reject arrived, say): recorded once so it is shown to the practice
-- and never sent again.
ALTER TABLE bookings ADD COLUMN appointment_change TEXT;
ALTER TABLE bookings ADD COLUMN appointment_change_at BIGINT;
ALTER TABLE bookings ADD COLUMN late_outcome TEXT;
