-- R-DB-2 step 3 (ETL): the rows written before the trigger, tripgen.batch_size at a time (the runner repeats it);
-- rows already copied, by an earlier batch or by the trigger, are left out.
-- total: SELECT count(*) FROM trips AS t WHERE NOT EXISTS (SELECT 1 FROM trips_v2 AS v WHERE v.id = t.id)
INSERT INTO trips_v2 (id, user_id, city, country, ai_confidence_score, created_at)
SELECT t.id, t.user_id, split_part(t.destination, ', ', 1), nullif(split_part(t.destination, ', ', 2), ''),
       t.ai_confidence_score, t.created_at
FROM trips AS t
WHERE NOT EXISTS (SELECT 1 FROM trips_v2 AS v WHERE v.id = t.id)
ORDER BY t.id
LIMIT current_setting('tripgen.batch_size')::int
ON CONFLICT (id) DO NOTHING;
