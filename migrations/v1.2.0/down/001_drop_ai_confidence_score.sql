-- Undoes expand (and the backfill's values) when the release rolls back before contract.
ALTER TABLE trips DROP COLUMN IF EXISTS ai_confidence_score;
