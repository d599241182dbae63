-- R-DB-2 step 4, after the switch: the legacy table steps aside and trips becomes a view of trips_v2, which
-- readers and writers of trips (id, user_id, destination) keep using; new ids come from trips_v2 from now on.
DROP TRIGGER IF EXISTS trips_v2_sync ON trips;
ALTER TABLE trips RENAME TO trips_legacy;
SELECT setval(pg_get_serial_sequence('trips_v2', 'id'), greatest(max(id), 1)) FROM trips_v2;
CREATE VIEW trips AS
    SELECT id, user_id, concat_ws(', ', city, country) AS destination, ai_confidence_score, created_at FROM trips_v2;
CREATE FUNCTION trips_view_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO trips_v2 (user_id, city, country, ai_confidence_score)
        VALUES (NEW.user_id, split_part(NEW.destination, ', ', 1), nullif(split_part(NEW.destination, ', ', 2), ''),
                NEW.ai_confidence_score)
        RETURNING id, created_at INTO NEW.id, NEW.created_at;
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE trips_v2 SET user_id = NEW.user_id, city = split_part(NEW.destination, ', ', 1),
            country = nullif(split_part(NEW.destination, ', ', 2), ''), ai_confidence_score = NEW.ai_confidence_score
        WHERE id = OLD.id;
        RETURN NEW;
    END IF;
    DELETE FROM trips_v2 WHERE id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER trips_view_write INSTEAD OF INSERT OR UPDATE OR DELETE ON trips
    FOR EACH ROW EXECUTE FUNCTION trips_view_write();
