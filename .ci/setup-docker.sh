#!/usr/bin/env bash
# Installs the container engines and tools tender-oci's tests drive (idempotent; run as
# root): docker, containerd (CRI, ctr), runc (which runs a pod's sandbox), podman with its
# default network backend (netavark), Debian's CNI plugins, and the clients the tests use.
#
# The tests start a private dockerd of their own (own data root, exec root, socket, and
# network/mount namespaces; see tender-oci/tests/common/dockerd.rs), with the freshly
# built target/x86_64-unknown-linux-gnu/release/tender-oci registered as runtime `tender`. So this script only
# installs packages: it starts no daemon and touches no global docker configuration.
#
# Needs: docker.io (dockerd 20.10, containerd, its docker client at /usr/bin/docker),
# runc, podman + netavark + crun, containernetworking-plugins (/usr/lib/cni), util-linux
# (unshare, nsenter), iproute2 (ip, tc), iputils-ping (ping), bsdutils (script), curl.
set -euo pipefail

need=()
command -v dockerd >/dev/null && [ -x /usr/bin/docker ] || need+=(docker.io)
command -v containerd >/dev/null && command -v ctr >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
command -v podman >/dev/null || need+=(podman)
[ -x /usr/lib/podman/netavark ] || command -v netavark >/dev/null || need+=(netavark)
command -v crun >/dev/null || need+=(crun)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v curl >/dev/null || need+=(curl)
# tests/cri.rs: protoc builds the CRI client (k8s-cri); iptables for CNI's ipMasq/portmap.
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v iptables >/dev/null || need+=(iptables)
command -v tc >/dev/null || need+=(iproute2)
command -v unshare >/dev/null && command -v nsenter >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v script >/dev/null || need+=(bsdutils)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
dockerd --version
containerd --version
podman --version
