-- The scan, in its own transaction: VALIDATE CONSTRAINT lets reads and writes go on meanwhile.
ALTER TABLE trips VALIDATE CONSTRAINT trips_ai_confidence_score_not_null;
