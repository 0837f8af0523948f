"""The policy pack: `pulumi preview --policy-pack policy`. The policies live in eks_istio_shop/, by domain."""

from pulumi_policy import EnforcementLevel, PolicyPack

# The CLI runs this file with the pack directory first on sys.path.
from eks_istio_shop import PACK_NAME, cluster, edge, isolation, mesh, nodes, tags, workloads

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[*nodes.POLICIES, *cluster.POLICIES, *workloads.POLICIES, *mesh.POLICIES, *isolation.POLICIES,
              *edge.POLICIES, *tags.POLICIES],
)
