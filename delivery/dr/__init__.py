"""The DR drill's database and cache side (R-DR-1, R-DR-2): a streaming standby cut over from a killed primary,
and a Redis restored from its RDB and AOF backup, each measured against the policy's disaster_recovery limits."""
