#!/usr/bin/env bash
# Installs what tender-oci's docker tests need (idempotent; run as root).
#
# The tests start a private dockerd of their own (own data root, exec root, socket, and
# network/mount namespaces; see tender-oci/tests/common/dockerd.rs), with the freshly
# built target/x86_64-unknown-linux-gnu/release/tender-oci registered as runtime `tender`. So this script only
# installs packages: it starts no daemon and touches no global docker configuration.
#
# Needs: docker.io (dockerd 20.10, containerd, its docker client at /usr/bin/docker),
# util-linux (unshare, nsenter), iproute2 (ip), iputils-ping (ping), bsdutils (script).
set -euo pipefail

need=()
command -v dockerd >/dev/null && [ -x /usr/bin/docker ] || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v unshare >/dev/null && command -v nsenter >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v script >/dev/null || need+=(bsdutils)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
dockerd --version
