"""Database migrations shipped with a release, in expand / backfill / contract phases with a `down` for expand (R-DB)."""
