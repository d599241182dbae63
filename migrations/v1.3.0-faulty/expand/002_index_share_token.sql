-- Alone in its file: the runner builds it outside a transaction, without blocking writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS trips_share_token_idx ON trips (share_token);
