#!/usr/bin/env bash
# One command for the dev stack: checks prerequisites, installs, logs in, selects the stack, runs `pulumi up`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
pulumi up --stack "${STACK}" --diff "$@"
