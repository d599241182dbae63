-- Undoes expand, last file first; alone in its file, outside a transaction, without blocking writes.
DROP INDEX CONCURRENTLY IF EXISTS trips_share_token_idx;
