"""The local sandbox cluster: a Kubernetes API emulator, controllers, a gateway with
simulated versions, their telemetry, a Prometheus API and an OCI registry."""
