#!/usr/bin/env bash
# Tears the stack down, then asks AWS whether anything of the stack is left.
# Every billed AWS object is in Pulumi state, so destroy removes them all; the check proves it.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
region="$(pulumi config get aws:region --stack "${STACK}")"
cluster="$(pulumi config get clusterName --stack "${STACK}" 2>/dev/null || echo alpha)-${STACK}"
# `pulumi destroy` does not run the program: app stacks on this stack must be gone first.
.venv/bin/python -m tools.platform_guard "${STACK}"
pulumi destroy --stack "${STACK}" "$@"
.venv/bin/python -m pip install --quiet boto3==1.44.8
.venv/bin/python -m tools.leftovers "${STACK}" --region "${region}" --cluster-name "${cluster}"
