"""The policy pack: `pulumi preview --policy-pack policy`. The policies live in eks_istio_shop_policies.py."""

from pulumi_policy import EnforcementLevel, PolicyPack

# The CLI runs this file with the pack directory first on sys.path.
from eks_istio_shop_policies import PACK_NAME, POLICIES

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
