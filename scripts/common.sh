# Shared by up.sh and destroy.sh: prerequisites, virtualenv, backend login, stack selection.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STACK="${STACK:-dev}"

missing=()
command -v python3 >/dev/null || missing+=("python3 (3.11 or newer)")
command -v pulumi >/dev/null || missing+=("the Pulumi CLI (https://www.pulumi.com/docs/install/)")
command -v aws >/dev/null || missing+=("the AWS CLI v2 (the cluster's kubeconfig runs 'aws eks get-token')")
if ((${#missing[@]})); then
  echo "Cannot continue; install first:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
# Pulumi.yaml types its map settings (`type: object`), which the CLI understands from 3.187 on.
pulumi_version="$(pulumi version 2>/dev/null | sed 's/^v//')"
if ! printf '%s\n%s\n' "3.187.0" "${pulumi_version%%-*}" | sort -V -C; then
  echo "The Pulumi CLI is ${pulumi_version:-unknown}; this project needs 3.187 or newer (pulumi.com/docs/install)." >&2
  exit 1
fi
if ! aws sts get-caller-identity >/dev/null 2>&1; then
  echo "No usable AWS credentials: 'aws sts get-caller-identity' failed." >&2
  echo "Configure them (aws configure sso, AWS_PROFILE, or environment variables) and try again." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip==25.3
.venv/bin/python -m pip install --quiet -r requirements.txt

if [ -z "${PULUMI_BACKEND_URL:-}" ]; then
  # Pulumi's local file backend: state stays on this machine, nothing to sign up for.
  pulumi login --local >/dev/null
fi
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  echo "Note: the stack's secrets are encrypted with a passphrase; Pulumi will ask for it." >&2
  echo "      Set PULUMI_CONFIG_PASSPHRASE (or _FILE) to skip the prompt." >&2
fi
pulumi stack select "${STACK}" --create --secrets-provider passphrase
