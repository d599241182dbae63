-- SET NOT NULL finds the valid CHECK and skips the table scan; the CHECK has done its work.
ALTER TABLE trips ALTER COLUMN ai_confidence_score SET NOT NULL;
ALTER TABLE trips DROP CONSTRAINT IF EXISTS trips_ai_confidence_score_not_null;
