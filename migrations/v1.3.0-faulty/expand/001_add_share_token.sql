-- A trip's share link token: nullable, no default, so the old color's inserts keep working.
ALTER TABLE trips ADD COLUMN IF NOT EXISTS share_token text;
