"""The sandbox's nodes: an AKS node pool of two Standard_D4s_v3 VMs that the kubelet registers and schedules
pods onto, with the capacity, allocatable, conditions and node info the real kubelet reports."""

from __future__ import annotations

from delivery.sandbox.resources import SERVER_VERSION, timestamp
from delivery.sandbox.store import ObjectStore
from delivery.sandbox.usage import Usage

NODE_NAMES = ("aks-nodepool1-0", "aks-nodepool1-1")
CAPACITY = {"cpu": "4", "memory": "16374584Ki", "pods": "110", "ephemeral-storage": "129886128Ki"}
ALLOCATABLE = {"cpu": "3860m", "memory": "12880184Ki", "pods": "110", "ephemeral-storage": "119703055367"}
SYSTEM_USAGE = Usage(cpu_nanocores=180e6, memory_bytes=1.1 * 2**30)  # the kubelet, containerd and system pods
_CONDITIONS = (("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
               ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
               ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
               ("Ready", "True", "KubeletReady", "kubelet is posting ready status"))


def host_ip(name: str) -> str:
    """The node's InternalIP on the AKS subnet."""
    return f"10.224.0.{4 + NODE_NAMES.index(name)}" if name in NODE_NAMES else "10.224.0.4"


def node_manifest(name: str) -> dict:
    """A Node as an AKS kubelet registers it."""
    now = timestamp()
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubernetes.io/role": "agent", "agentpool": "nodepool1", "kubernetes.azure.com/agentpool": "nodepool1",
              "node.kubernetes.io/instance-type": "Standard_D4s_v3", "topology.kubernetes.io/region": "koreacentral",
              "topology.kubernetes.io/zone": f"koreacentral-{NODE_NAMES.index(name) + 1}"}
    conditions = [{"type": kind, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now,
                   "lastTransitionTime": now} for kind, status, reason, message in _CONDITIONS]
    info = {"machineID": f"{NODE_NAMES.index(name):032x}", "systemUUID": f"{NODE_NAMES.index(name):032x}",
            "bootID": f"{NODE_NAMES.index(name) + 1:032x}", "kernelVersion": "5.15.0-1079-azure",
            "osImage": "Ubuntu 22.04.5 LTS", "containerRuntimeVersion": "containerd://1.7.25-1",
            "kubeletVersion": SERVER_VERSION["gitVersion"].removesuffix("-sandbox"),
            "kubeProxyVersion": SERVER_VERSION["gitVersion"].removesuffix("-sandbox"),
            "operatingSystem": "linux", "architecture": "amd64"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {"providerID": f"azure:///subscriptions/sandbox/resourceGroups/mc_tripgen/providers/"
                                   f"Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1/virtualMachines/"
                                   f"{NODE_NAMES.index(name)}"},
            "status": {"capacity": CAPACITY, "allocatable": ALLOCATABLE, "conditions": conditions,
                       "addresses": [{"type": "InternalIP", "address": host_ip(name)},
                                     {"type": "Hostname", "address": name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}, "nodeInfo": info}}


def register_nodes(store: ObjectStore) -> None:
    """Create the node pool's Nodes that are not there yet (with their status, as the kubelet posts it)."""
    for name in NODE_NAMES:
        if store.get_object("nodes", None, name) is None:
            manifest = node_manifest(name)
            created = store.create("nodes", {k: v for k, v in manifest.items() if k != "status"})
            store.update("nodes", {**created, "status": manifest["status"]}, subresource="status")


def least_busy_node(store: ObjectStore) -> str:
    """The Ready node running the fewest pods (the scheduler's spreading, in short)."""
    counts = {name: 0 for name in NODE_NAMES}
    for pod in store.list_objects("pods"):
        node = (pod.get("spec") or {}).get("nodeName")
        if node in counts:
            counts[node] += 1
    return min(NODE_NAMES, key=lambda name: counts[name])
