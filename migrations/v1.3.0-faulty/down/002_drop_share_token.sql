-- Undoes expand when the watch rolls the release back (there is no contract).
ALTER TABLE trips DROP COLUMN IF EXISTS share_token;
