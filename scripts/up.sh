#!/usr/bin/env bash
# One command for the dev stack: checks prerequisites, installs, logs in, selects the stack, runs `pulumi up`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Images are built from services/ with Docker Buildx unless the stack names prebuilt ones for all three.
prebuilt="$(pulumi config get images --stack "${STACK}" 2>/dev/null || true)"
if ! .venv/bin/python -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); sys.exit(0 if {"products","orders","graphql"} <= set(d) else 1)' "${prebuilt}"; then
  if ! docker buildx version >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "Cannot continue: the service images are built with Docker Buildx, and no running Docker engine with buildx was found." >&2
    echo "Start Docker (with buildx), or set prebuilt images for all three services:" >&2
    echo "  pulumi config set --path 'images.products' <registry>/products:<tag>   (and orders, graphql)" >&2
    exit 1
  fi
fi
# The guardrails (policy/) run in every update: a mandatory violation stops it before anything changes.
if [ ! -x policy/venv/bin/python ]; then python3 -m venv policy/venv; fi
policy/venv/bin/python -m pip install --quiet -r policy/requirements.txt
pulumi up --stack "${STACK}" --diff --policy-pack policy "$@"
# The update succeeded (set -e stops on a failed or declined one): prove that the shop answers as a user
# would. It waits for DNS and the load balancer's health checks, up to 15 minutes; `make smoke` repeats it.
.venv/bin/python -m tools.smoke "${STACK}"
