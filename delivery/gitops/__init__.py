"""GitOps: the manifests under infra/k8s-manifests, and what works on them."""
