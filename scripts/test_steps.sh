#!/usr/bin/env bash
# `make test`: run the steps of TEST_STEPS, each as `make <step>`, and end with a summary.
#
#   scripts/test_steps.sh lint sanity test-unit test-roles+test-e2e
#
# A step joined to others with "+" (test-roles+test-e2e+test-ha) is a parallel group: its members start
# at the same time (the machine labs wait on machines, apt and SSH far more than on the CPU, and each
# takes its own local-cloud slot). A member's output goes to the console as it comes, each line prefixed
# with [member], and whole to $TEST_LOG_DIR/<member>.log; each member gets its own line and time in the
# summary, the group a line with its wall time.
#
# Every step runs even when an earlier one fails (CI then reports every failure at once); the summary
# comes last and the exit status is non-zero if any step failed. FAIL_FAST=1 stops after the first
# step (or group) that failed. Ctrl-C (or SIGTERM) is passed on to every running member as SIGINT, so
# pytest tears its labs down; no further step starts then.
#
# Environment: MAKE (the make to run steps with), TEST_LOG_DIR (default tests/output/make-test),
# FAIL_FAST.
set -uo pipefail

make_cmd=${MAKE:-make}
log_dir=${TEST_LOG_DIR:-tests/output/make-test}
fail_fast=${FAIL_FAST:-}
failed=()
summary=()
members_running=()

# Ctrl-C reaches only the foreground process group; the members run in process groups of their own
# (set -m below), so it is passed on here. pytest tears its labs down on SIGINT.
interrupted=
interrupt() {
    local pid
    interrupted=1
    for pid in "${members_running[@]}"; do kill -INT -- "-$pid" 2>/dev/null; done
}
trap interrupt INT TERM

line() {  # step result seconds [note]
    printf '%-20s %-6s %5ds%s' "$1" "$2" "$3" "${4:+  $4}"
}

run_step() {
    local step=$1 start=$SECONDS result=ok
    echo "=== make $step"
    $make_cmd --no-print-directory "$step" || result=FAILED
    [ $result = ok ] || failed+=("$step")
    summary+=("$(line "$step" $result $((SECONDS - start)))")
    [ $result = ok ]
}

# A member: make's output, whole into its log and prefixed to the console; its exit code and time
# into <member>.result for the summary.
run_member() {
    local member=$1 start=$SECONDS rc
    # tee and sed ignore SIGINT: they must outlive make to carry pytest's teardown output
    $make_cmd --no-print-directory "$member" 2>&1 | tee -i "$log_dir/$member.log" \
        | (trap '' INT; exec sed -u "s/^/[$member] /")
    rc=${PIPESTATUS[0]}
    echo "$rc $((SECONDS - start))" >"$log_dir/$member.result"
    return "$rc"
}

run_group() {
    local group=$1 start=$SECONDS member rc seconds others group_result=ok
    local -a members
    IFS=+ read -r -a members <<<"$group"
    mkdir -p "$log_dir"
    echo "=== make ${members[*]} (at the same time; logs in $log_dir/<step>.log)"
    members_running=()
    set -m                                  # each member in a process group of its own (see interrupt)
    for member in "${members[@]}"; do
        rm -f "$log_dir/$member.result"
        run_member "$member" &
        members_running+=($!)
    done
    set +m
    for pid in "${members_running[@]}"; do
        while ! wait "$pid"; do             # wait returns early (>128) when a trapped signal arrives
            kill -0 "$pid" 2>/dev/null || break
        done
    done
    members_running=()
    for member in "${members[@]}"; do
        rc='' seconds=''
        others=$(printf '%s\n' "${members[@]}" | grep -vxF "$member" | paste -sd, -)
        if read -r rc seconds 2>/dev/null <"$log_dir/$member.result" && [ "$rc" = 0 ]; then
            summary+=("$(line "$member" ok "$seconds" "(with $others)")")
        else
            summary+=("$(line "$member" FAILED "${seconds:-$((SECONDS - start))}" "(with $others; log: $log_dir/$member.log)")")
            failed+=("$member")
            group_result=FAILED
        fi
    done
    summary+=("$(line "$group" "$group_result" $((SECONDS - start)) "(the group's wall time)")")
    [ $group_result = ok ]
}

total=$SECONDS
for step in "$@"; do
    if [[ $step == *+* ]]; then
        run_group "$step"
    else
        run_step "$step"
    fi || { [ -z "$fail_fast" ] || break; }
    [ -z "$interrupted" ] || { echo "=== interrupted: the steps after $step do not run"; break; }
done

echo "=== make test summary"
printf '  %s\n' "${summary[@]}"
printf '  %-20s %-6s %5ds\n' "total" "" $((SECONDS - total))
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
