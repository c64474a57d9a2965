#!/usr/bin/env bash
# models/check_net.sh - model-check the design of the commit protocol across
# hosts (models/net_commit.pml, issue #16) with spin, exhaustively.
#
#   models/check_net.sh               scenarios 1, 3 and 5 (about 90 s): the CI gate
#   MODEL_FULL=1 models/check_net.sh  also scenarios 2, 4, 6 and 7 (tens of millions
#                                     of states, several minutes and GBs each)
#   models/check_net.sh --self-test   seeded mutations (MUT_*): each must be caught
#                                     by the scenario named for it
#
# Every run is a safety run with the model's own assertions, including those of
# its Check process at quiescence, and invalid end states (a matcher or agent
# wedged).  Exits non-zero on any error, or, in --self-test, on a mutation that
# goes uncaught.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=$here/net_commit.pml
mode=${1:-gate}

if ! command -v spin >/dev/null || ! command -v gcc >/dev/null; then
    echo "check_net.sh: needs spin and gcc (Debian/Ubuntu: apt-get install -y spin gcc)" >&2
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# verify SCENARIO [DEFINE...]: prints one line; returns 0 iff no error.
verify() {
    local scen=$1; shift
    spin -a -DSCEN="$scen" "$@" "$model" >/dev/null
    gcc -O2 -w -DSAFETY -DCOLLAPSE -DVECTORSZ=4096 -o pan pan.c
    local start out
    start=$(date +%s)
    out=$(./pan -m100000 -w26 2>&1 || true)
    local states errors
    states=$(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' <<<"$out")
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' <<<"$out")
    printf '  scenario %s %-18s %10s states %4ss  errors %s\n' "$scen" "${*:-}" "${states:-?}" \
        "$(( $(date +%s) - start ))" "${errors:-?}"
    [ "${errors:-1}" = 0 ]
}

status=0
case "$mode" in
gate)
    echo "net_commit.pml, the protocol as designed:"
    scenarios="1 3 5"
    [ "${MODEL_FULL:-0}" = 1 ] && scenarios="1 2 3 4 5 6 7"
    for s in $scenarios; do verify "$s" || status=1; done
    ;;
--self-test)
    echo "net_commit.pml, seeded mutations (each must fail a scenario):"
    for pair in MUT_NO_ORDER:1 MUT_NO_EPOCH:3 MUT_FAIL_CLAIMED:2 MUT_NO_RELEASE:2 \
                MUT_NO_ACK:5 MUT_NO_FENCE:5; do
        m=${pair%:*}
        if verify "${pair#*:}" -D"$m"; then echo "  $m: NOT caught"; status=1; else echo "  $m: caught"; fi
    done
    ;;
*)
    echo "usage: $0 [--self-test]" >&2
    exit 2
    ;;
esac
exit $status
