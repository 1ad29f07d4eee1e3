#!/bin/sh
# Open MPI's launch agent for tests/mpi/cross_host.sh, in place of ssh: runs
# the command Open MPI gives for HOST inside that host's network namespace.
# Usage (by Open MPI): netns_agent.sh [options] HOST COMMAND...
while [ $# -gt 0 ]; do
  case "$1" in
    -*) shift ;;  # ssh options Open MPI may add (e.g. -x)
    *) break ;;
  esac
done
host=$1
shift
ns=$(awk -v h="$host" '$1 == h { print $2 }' "${CONCUR_NETNS_MAP:?}")
[ -n "$ns" ] || { echo "netns_agent: no namespace for host $host" >&2; exit 1; }
exec ip netns exec "$ns" /bin/sh -c "$*"
