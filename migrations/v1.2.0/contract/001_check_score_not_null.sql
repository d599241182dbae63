-- R-DB-1 step 4, NOT NULL the safe way: a CHECK added NOT VALID takes its lock for an instant, without a scan.
ALTER TABLE trips ADD CONSTRAINT trips_ai_confidence_score_not_null CHECK (ai_confidence_score IS NOT NULL) NOT VALID;
