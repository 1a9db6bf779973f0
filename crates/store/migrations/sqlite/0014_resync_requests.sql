-- A bulk resync reaches every node: one row per practice, taken by whichever node holds the
-- practice's lease at its next lease round (it wakes the worker), which then records the end.
-- A practice is done when `finished_at` is set (`error` NULL) or failed (`error` set).
CREATE TABLE resync_requests (
    bulk_id       BLOB    NOT NULL REFERENCES bulk_actions (id) ON DELETE CASCADE,
    link_id       BLOB    NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    what          TEXT    NOT NULL CHECK (what IN ('config', 'availability')),
    requested_at  INTEGER NOT NULL,
    node_id       TEXT,
    taken_at      INTEGER,
    finished_at   INTEGER,
    error         TEXT,
    sent_days     INTEGER,
    total_days    INTEGER,
    PRIMARY KEY (bulk_id, link_id)
);
-- The open requests, found per link by each node's lease round.
CREATE INDEX resync_requests_open ON resync_requests (link_id, requested_at)
    WHERE finished_at IS NULL;
