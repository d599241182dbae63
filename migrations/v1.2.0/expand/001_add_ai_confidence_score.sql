-- R-DB-1 step 1: the new column, nullable and without a default, so the old color's inserts keep working.
ALTER TABLE trips ADD COLUMN IF NOT EXISTS ai_confidence_score DECIMAL(3,2);
