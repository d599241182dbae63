-- The existing trips get the neutral score 0.5, one batch of tripgen.batch_size rows per run (the runner repeats it).
-- total: SELECT count(*) FROM trips WHERE ai_confidence_score IS NULL
UPDATE trips SET ai_confidence_score = 0.5
WHERE id IN (SELECT id FROM trips WHERE ai_confidence_score IS NULL ORDER BY id
             LIMIT current_setting('tripgen.batch_size')::int);
