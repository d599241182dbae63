-- R-DB-2 step 2: every write to trips (the old color's, and v1.4.0's until contract) reaches trips_v2 in the same
-- transaction; the backfill copies the rows written before.
CREATE OR REPLACE FUNCTION trips_v2_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM trips_v2 WHERE id = OLD.id;
        RETURN OLD;
    END IF;
    INSERT INTO trips_v2 (id, user_id, city, country, ai_confidence_score, created_at)
    VALUES (NEW.id, NEW.user_id, split_part(NEW.destination, ', ', 1), nullif(split_part(NEW.destination, ', ', 2), ''),
            NEW.ai_confidence_score, NEW.created_at)
    ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, city = excluded.city, country = excluded.country,
        ai_confidence_score = excluded.ai_confidence_score, created_at = excluded.created_at;
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER trips_v2_sync AFTER INSERT OR UPDATE OR DELETE ON trips
    FOR EACH ROW EXECUTE FUNCTION trips_v2_sync();
