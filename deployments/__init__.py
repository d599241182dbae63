"""How flows are deployed and triggered: prefect.yaml, and the script GitHub Actions runs."""
