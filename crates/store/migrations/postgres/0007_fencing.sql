-- Fenced leases (issue 12): every take-over of a link's lease gets a new, larger epoch; a
-- worker's writes carry (node, epoch) and are refused once another node holds a newer one.
ALTER TABLE link_leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
-- Bumped by every change of a link (practice, keys, site, enabled, horizon), so the node that
-- works it sees the change at its next lease round wherever the change was made.
ALTER TABLE links ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
-- A booking's claim belongs to a node and the lease epoch it held when it claimed.
ALTER TABLE bookings ADD COLUMN claim_epoch BIGINT;
-- The marketplace practice a booking came from (a link may move to another practice).
ALTER TABLE bookings ADD COLUMN market_practice_id TEXT;
