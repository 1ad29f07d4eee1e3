#!/usr/bin/env bash
# concur::mpi across hosts, not only across processes: three network
# namespaces of this test's own, each with its own address (10.77.x only
# inside them), joined by veth pairs to a bridge that lives in the first.
# Open MPI starts one rank per "host" through a launch agent that enters the
# host's namespace (tests/mpi/netns_agent.sh), ranks talk over TCP only (no
# shared-memory transport), and the program checks its results and that
# the serving ranks ran in other namespaces than rank 0.
# Exit 77 (ctest: skipped) where namespaces cannot be made here.
# Usage: cross_host.sh PROGRAM [ARGS...]
set -u
program=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
tag="cc$$"
ns=("${tag}h0" "${tag}h1" "${tag}h2")
addr=(10.77.0.10 10.77.0.11 10.77.0.12)
map=$(mktemp)
hosts=$(mktemp)

cleanup() {
  for n in "${ns[@]}"; do ip netns del "$n" 2>/dev/null; done
  rm -f "$map" "$hosts"
}
trap cleanup EXIT

# A run that was killed (a ctest timeout) could not clean up: its namespaces
# hold the same addresses. Remove those whose script is gone.
for stale in $(ip netns list 2>/dev/null | sed -n 's/^\(cc\([0-9]*\)h[0-2]\).*/\1 \2/p' | tr ' ' ':'); do
  if ! kill -0 "${stale#*:}" 2>/dev/null; then ip netns del "${stale%:*}" 2>/dev/null; fi
done

if ! ip netns add "${ns[0]}" 2>/dev/null; then
  echo "SKIPPED: this machine does not allow network namespaces (ip netns add failed)"
  exit 77
fi
set -e
ip netns add "${ns[1]}"
ip netns add "${ns[2]}"
for n in "${ns[@]}"; do ip -n "$n" link set lo up; done
ip -n "${ns[0]}" link add br0 type bridge
ip -n "${ns[0]}" link set br0 up
ip -n "${ns[0]}" addr add "${addr[0]}/24" dev br0
for i in 1 2; do
  ip link add "${tag}a$i" type veth peer name "${tag}b$i"
  ip link set "${tag}a$i" netns "${ns[0]}"
  ip link set "${tag}b$i" netns "${ns[$i]}"
  ip -n "${ns[0]}" link set "${tag}a$i" master br0
  ip -n "${ns[0]}" link set "${tag}a$i" up
  ip -n "${ns[$i]}" addr add "${addr[$i]}/24" dev "${tag}b$i"
  ip -n "${ns[$i]}" link set "${tag}b$i" up
done
for i in 0 1 2; do
  echo "${addr[$i]} ${ns[$i]}" >> "$map"
  echo "${addr[$i]} slots=1" >> "$hosts"
done
set +e

export CONCUR_NETNS_MAP=$map
export CONCUR_EXPECT_HOSTS=3
ip netns exec "${ns[0]}" mpirun --allow-run-as-root -np 3 --hostfile "$hosts" \
  --mca plm_rsh_agent "$here/netns_agent.sh" \
  --mca btl self,tcp --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
  --mca rtc_hwloc_vmhole none \
  -x CONCUR_EXPECT_HOSTS \
  "$program" "$@"
rc=$?
echo "cross_host: mpirun exited with $rc"
exit $rc
