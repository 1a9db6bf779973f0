-- The fleet's figures over time (the console's fleet view, GET /api/fleet): each node adds
-- what its counters counted since its last flush to the 5-minute slot of its clock, one row
-- per (node, slot, series); the view sums the nodes. Rows older than 48 hours are pruned.
CREATE TABLE fleet_counts (
    node_id TEXT NOT NULL,
    slot BIGINT NOT NULL,
    series TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (node_id, slot, series)
);
CREATE INDEX fleet_counts_slot ON fleet_counts (slot);
