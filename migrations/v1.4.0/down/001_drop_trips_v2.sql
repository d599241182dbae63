-- Undoes expand (and the backfill's copies) when the release rolls back before contract: trips was never touched.
DROP TRIGGER IF EXISTS trips_v2_sync ON trips;
DROP FUNCTION IF EXISTS trips_v2_sync();
DROP TABLE IF EXISTS trips_v2;
