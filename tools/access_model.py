"""Who runs Pulumi on which stack, as which role, and the Kubernetes access each needs: the identity model.

    python -m tools.access_model        # print the identity and session tables docs/delivery.md carries

The cluster uses EKS access entries (authenticationMode API). IAM rights give no Kubernetes RBAC: a
role reaches the cluster only as the cluster's creator (EKS makes the creating identity admin by
itself) or through an access entry that the stack's settings ask for:

- `clusterAdminArns`: AmazonEKSClusterAdminPolicy, cluster scope (what up, destroy and a refresh
  that writes state need);
- `clusterViewerArns`: AmazonEKSAdminViewPolicy, cluster scope (reads everything, Secrets included:
  `pulumi preview --refresh` reads the Helm releases' Secrets);
- `appDeployerArns`, a setting of the *platform* stack (not of the app stack): AmazonEKSAdminPolicy
  scoped to the app stacks' namespaces (shop-*), and a group that a ValidatingAdmissionPolicy confines
  to them (components/app_access.py). An app stack creates no cluster, so nobody is its creator: every
  identity that runs up or destroy on an app stack reaches the platform's cluster through this grant.

The tables below are what tests/delivery/test_access_model.py holds the workflows to, what
`tools.access_check` names in its advice, and what docs/delivery.md prints.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Optional

from settings import APP_KIND, PLATFORM_KIND, PROJECT

VIEW = "view"
ADMIN = "admin"
# Admin of the app stacks' namespaces on the platform's cluster, nothing cluster-wide.
NAMESPACE_ADMIN = "namespace admin"
_RANK = {VIEW: 1, NAMESPACE_ADMIN: 1, ADMIN: 2}
# Which level meets which need: cluster admin meets all; namespace admin and view meet only themselves
# (a view of the whole cluster cannot change an app stack's objects, and namespace admin cannot read
# what a platform's refresh reads cluster-wide).
_MEETS = {ADMIN: {ADMIN, VIEW, NAMESPACE_ADMIN}, VIEW: {VIEW}, NAMESPACE_ADMIN: {NAMESPACE_ADMIN}}

ADMIN_SETTING = f"{PROJECT}:clusterAdminArns"
VIEWER_SETTING = f"{PROJECT}:clusterViewerArns"
APP_DEPLOYER_SETTING = f"{PROJECT}:appDeployerArns"
# Repository variables (not an environment's: the job that writes each into a stack's settings runs
# in another environment than the role it names, and repository variables are visible to every one).
TEARDOWN_ROLE_VARIABLE = "DEMO_TEARDOWN_ROLE_ARN"
PREVIEW_ROLE_VARIABLE = "PREVIEW_ROLE_ARN"

# What each Pulumi operation needs inside the cluster. A refreshing preview only reads; anything
# that writes state (up, destroy, a refresh that is not a preview) must be able to change objects.
OPERATION_NEEDS = {
    "preview": VIEW,
    "up": ADMIN,
    "destroy": ADMIN,
    "refresh": ADMIN,
}

# The role a session may take for each environment: `role-duration-seconds` must not exceed the
# role's MaxSessionDuration (AWS refuses the credentials step), and the session must outlive the
# job's timeout (expired credentials in the middle of `pulumi up` leave the stack locked and half
# changed). AWS's default MaxSessionDuration is 3600 s; the long-running roles need it raised with
# `aws iam update-role --role-name <name> --max-session-duration 7200`.
DEFAULT_MAX_SESSION_SECONDS = 3600


@dataclass(frozen=True)
class Role:
    environment: str
    max_session_seconds: int
    why: str


ROLES = {
    role.environment: role
    for role in (
        Role("preview", 3600, "a refreshing preview of dev takes minutes; the default suffices"),
        Role("dev", 7200, "up with refresh, image builds and, rarely, a cluster replacement (delete 10-15 min "
                          "+ create 14-20 min) plus the smoke check can pass an hour"),
        Role("demo", 7200, "a first up of a whole stack (14-20 min) plus arm64 image builds and the smoke check"),
        Role("demo-teardown", 7200, "the reaper destroys up to 4 stacks one after another (about 15 min each)"),
        Role("nightly", 7200, "each phase re-assumes the role; one job (up + smoke) can still pass an hour"),
    )
}


@dataclass(frozen=True)
class Grant:
    """An environment's role gets `level` on a kind of stack, by being its creator or through `setting`."""

    environment: str
    level: str
    setting: Optional[str]  # None: the cluster's creator, admin by EKS's bootstrap entry
    set_by: str  # who puts the setting there (or who creates the stack)
    # The (workflow, job) that writes the setting, before its `pulumi up`, as element 0 of the list,
    # from the repository variable `variable`; tests/delivery/test_access_model.py holds the workflows to it.
    set_by_job: Optional[tuple[str, str]] = None
    variable: Optional[str] = None
    # The platform stack (a key of STACKS) whose `setting` holds the grant, when it is not the stack's own
    # (app stacks' access comes from their platform's appDeployerArns).
    platform: Optional[str] = None


@dataclass(frozen=True)
class StackKind:
    name: str  # as written in the docs: dev, pr-<n>, nightly-<run>
    pattern: str  # regular expression for a bare stack name
    created_by: str
    grants: tuple[Grant, ...]
    kind: str = PLATFORM_KIND  # settings.py's stackKind

    def needs(self, operation: str) -> str:
        """The access `operation` needs on this kind: on an app stack every operation only touches its
        own namespace on the platform's cluster."""
        return NAMESPACE_ADMIN if self.kind == APP_KIND else OPERATION_NEEDS[operation]

    def level_of(self, environment: str) -> Optional[str]:
        levels = [grant.level for grant in self.grants if grant.environment == environment]
        return max(levels, key=_RANK.__getitem__) if levels else None


STACKS = {
    kind.name: kind
    for kind in (
        StackKind(
            "dev", r"^dev$",
            created_by="the `dev` role's first deploy (or a person's `make up`)",
            grants=(
                Grant("dev", ADMIN, None,
                      f"if a person created dev instead: `{ADMIN_SETTING}` in Pulumi.dev.yaml lists the dev role"),
                Grant("preview", VIEW, VIEWER_SETTING,
                      f"deploy.yml before each `pulumi up`, from the repository variable {PREVIEW_ROLE_VARIABLE}",
                      ("deploy", "up"), PREVIEW_ROLE_VARIABLE),
            )),
        StackKind(
            "pr-<n> (app)", r"^pr-\d+$",
            created_by="demo.yml's up job (`demo` role), for the `demo` label: an app stack on dev",
            kind=APP_KIND,
            grants=(
                Grant("demo", NAMESPACE_ADMIN, APP_DEPLOYER_SETTING,
                      "the user, in dev's Pulumi.dev.yaml (the demo role's ARN), applied by dev's next deploy",
                      platform="dev"),
                Grant("demo-teardown", NAMESPACE_ADMIN, APP_DEPLOYER_SETTING,
                      f"the user, in dev's Pulumi.dev.yaml (the ARN in {TEARDOWN_ROLE_VARIABLE}), applied by "
                      "dev's next deploy", platform="dev"),
            )),
        StackKind(
            "pr-<n> (full)", r"^pr-\d+$",
            created_by="demo.yml's up job (`demo` role), for the `demo-full` label: a whole environment",
            grants=(
                Grant("demo", ADMIN, None, "creator"),
                Grant("demo-teardown", ADMIN, ADMIN_SETTING,
                      f"demo.yml, from the repository variable {TEARDOWN_ROLE_VARIABLE}", ("demo", "up"),
                      TEARDOWN_ROLE_VARIABLE),
            )),
        StackKind(
            "nightly-<run>", r"^nightly-\d+$",
            created_by="nightly.yml's up job (`nightly` role)",
            grants=(
                Grant("nightly", ADMIN, None, "creator"),
                Grant("demo-teardown", ADMIN, ADMIN_SETTING,
                      f"nightly.yml, from the repository variable {TEARDOWN_ROLE_VARIABLE}", ("nightly", "up"),
                      TEARDOWN_ROLE_VARIABLE),
            )),
    )
}


@dataclass(frozen=True)
class Job:
    workflow: str
    job: str
    environment: str
    stacks: tuple[str, ...]
    operation: str  # a key of OPERATION_NEEDS
    what: str  # the operation as run, for the table
    teardown: bool = False  # may meet an unreachable cluster: PULUMI_K8S_DELETE_UNREACHABLE and a refresh
    quota: str = "none"  # what it takes of the region's VPC and Elastic IP quotas (5 each by default)

    @property
    def needs(self) -> str:
        return OPERATION_NEEDS[self.operation]


JOBS = (
    Job("preview", "preview", "preview", ("dev",), "preview", "`pulumi preview --refresh --diff`"),
    Job("deploy", "up", "dev", ("dev",), "up", "`pulumi up --refresh`, then the smoke check",
        quota="1 VPC, 1 EIP (dev, for good)"),
    Job("demo", "up", "demo", ("pr-<n> (app)", "pr-<n> (full)"), "up", "`pulumi up`, then the smoke check",
        quota="an app stack none; a full one 1 VPC, 1 EIP; at most DEMO_MAX_STACKS (default 2) live"),
    Job("demo", "destroy", "demo-teardown", ("pr-<n> (app)", "pr-<n> (full)"), "destroy",
        "`pulumi destroy --refresh --remove`", teardown=True, quota="gives them back"),
    Job("reap", "reap", "demo-teardown", ("pr-<n> (app)", "pr-<n> (full)", "nightly-<run>"), "destroy",
        "`tools.reap`: destroy (with refresh) and remove expired stacks", teardown=True, quota="gives them back"),
    Job("nightly", "up", "nightly", ("nightly-<run>",), "up", "`pulumi up`, then the smoke check",
        quota="1 VPC, 1 EIP for about an hour a night"),
    Job("nightly", "teardown", "nightly", ("nightly-<run>",), "destroy",
        "`pulumi destroy --refresh --remove`, then tools.leftovers", teardown=True, quota="gives them back"),
)


def job(workflow: str, name: str) -> Optional[Job]:
    return next((j for j in JOBS if (j.workflow, j.job) == (workflow, name)), None)


def covers(have: Optional[str], needs: str) -> bool:
    return have is not None and needs in _MEETS[have]


def stack_kind(stack: str, kind: str = PLATFORM_KIND) -> Optional[StackKind]:
    """The model's entry for a stack of that stackKind (pr-<n> is either, by its settings)."""
    bare = stack.rsplit("/", 1)[-1]
    return next((entry for entry in STACKS.values() if re.match(entry.pattern, bare) and entry.kind == kind), None)


def missing_access_advice(stack: str, needs: str) -> str:
    """Which setting gives a role `needs` on `stack`, for a message that tells the user what to change."""
    bare = stack.rsplit("/", 1)[-1]
    setting = VIEWER_SETTING if needs == VIEW else ADMIN_SETTING
    kind = stack_kind(bare)
    if kind is not None and kind.name != "dev":
        return (f"{bare} gives cluster admin to its creator and to the role in the repository variable "
                f"{TEARDOWN_ROLE_VARIABLE}, which the workflow that stands it up writes into {ADMIN_SETTING}: "
                f"set that variable to this role's ARN and run that workflow's up again")
    if bare == "dev" and needs == VIEW:
        return (f"set the repository variable {PREVIEW_ROLE_VARIABLE} to this role's ARN: deploy.yml writes it into "
                f"{VIEWER_SETTING} of stack dev before each `pulumi up` (docs/delivery.md, 'Identities'), so the "
                "next deploy of main gives it read access")
    where = "Pulumi.dev.yaml" if bare == "dev" else f"Pulumi.{bare}.yaml"
    return (f"add it to {setting} of stack {bare} ({where}; see docs/delivery.md, 'Identities') and run "
            f"`pulumi up` of {bare} as an identity that is already admin")


def identity_table() -> str:
    """The Markdown table docs/delivery.md carries (a test compares the two)."""
    lines = [
        "| workflow: job | environment (role) | stack(s) | operation | Kubernetes access needed | where it comes from "
        "| MaxSessionDuration / role-duration-seconds | VPC and EIP quotas |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for j in JOBS:
        sources = []
        needs = []
        for stack in j.stacks:
            grants = [g for g in STACKS[stack].grants if g.environment == j.environment]
            for grant in grants:
                if grant.setting is None:
                    extra = "" if grant.set_by == "creator" else f" ({grant.set_by})"
                    sources.append(f"{stack}: creator, by EKS's bootstrap entry{extra}")
                elif grant.platform is not None:
                    sources.append(f"{stack}: `{grant.setting}` of the platform stack {grant.platform} "
                                   f"(namespace-scoped: shop-* only), set by {grant.set_by}")
                else:
                    sources.append(f"{stack}: `{grant.setting}`, set by {grant.set_by}")
            need = STACKS[stack].needs(j.operation)
            if len(j.stacks) > 1 and need != j.needs:
                needs.append(f"{need} ({stack})")
        needs_text = "; ".join([j.needs] + needs) if needs else j.needs
        role = ROLES[j.environment]
        lines.append(
            f"| `{j.workflow}.yml`: {j.job} | `{j.environment}` | {', '.join(f'`{s}`' for s in j.stacks)} "
            f"| {j.what} | {needs_text} | {'; '.join(sources)} | {role.max_session_seconds} | {j.quota} |")
    return "\n".join(lines)


def session_table() -> str:
    """The Markdown table of each role's MaxSessionDuration that docs/delivery.md carries (a test compares them)."""
    lines = ["| role (environment) | MaxSessionDuration | why |", "| --- | --- | --- |"]
    lines += [f"| `{role.environment}` | {role.max_session_seconds} | {role.why} |" for role in ROLES.values()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(identity_table() + "\n\n" + session_table() + "\n")
