-- Which PMS a link reaches: 'exact' (an Exact-style site: site slug and key) or 'cliniko' (a
-- Cliniko business: key and business id; the site slug is then `lcliniko{business id}`).
-- Links made before this migration are Exact-style ones.
ALTER TABLE links ADD COLUMN pms_kind TEXT NOT NULL DEFAULT 'exact';
ALTER TABLE links ADD COLUMN pms_business_id TEXT;
