-- Every reader now goes through the view: the legacy table and its sync function go.
DROP TABLE IF EXISTS trips_legacy;
DROP FUNCTION IF EXISTS trips_v2_sync();
