#!/usr/bin/env bash
# Tears the stack down. Every billed AWS object is in Pulumi state, so this removes them all.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
pulumi destroy --stack "${STACK}" "$@"
