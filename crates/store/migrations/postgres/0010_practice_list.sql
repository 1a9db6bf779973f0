-- Issue 15: names, a list for thousands of practices, freshness as it is, and the audit log.

-- The practice's name as the PMS reports it (written by the worker at each setup read), and the
-- marketplace practice's name (entered by the operator: the marketplace's API gives none).
ALTER TABLE links ADD COLUMN pms_practice_name TEXT;
ALTER TABLE links ADD COLUMN market_practice_name TEXT;

-- The setup findings of the last whole-horizon PMS read, so the list needs no PMS call:
-- counts by severity and the codes as ",code,code," (a code filter is one LIKE).
ALTER TABLE sync_state ADD COLUMN setup_errors BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sync_state ADD COLUMN setup_warnings BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sync_state ADD COLUMN setup_codes TEXT NOT NULL DEFAULT ',';
-- Freshness: the oldest PMS change seen and not yet published (NULL: nothing waits), and the
-- time from the last published change to its publish.
ALTER TABLE sync_state ADD COLUMN change_pending_since BIGINT;
ALTER TABLE sync_state ADD COLUMN last_freshness_us BIGINT;

-- One sample per published change over the last day (pruned as samples are added), for p99.
CREATE TABLE freshness_samples (
    link_id       UUID    NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    published_at  BIGINT NOT NULL,
    freshness_us  BIGINT NOT NULL
);
CREATE INDEX freshness_samples_link ON freshness_samples (link_id, published_at);

-- Operators' actions: who (the console session or API token), what, when, on which practices.
CREATE TABLE audit_log (
    seq       BIGSERIAL PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    links     TEXT    NOT NULL,
    detail    TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Bulk actions on a filtered set of practices, with their progress.
CREATE TABLE bulk_actions (
    id           UUID    NOT NULL PRIMARY KEY,
    action       TEXT    NOT NULL,
    filter       TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    total        BIGINT NOT NULL,
    done         BIGINT NOT NULL DEFAULT 0,
    failed       BIGINT NOT NULL DEFAULT 0,
    failures     TEXT    NOT NULL DEFAULT '[]',
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
