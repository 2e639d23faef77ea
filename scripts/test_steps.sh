#!/usr/bin/env bash
# `make test`: run the steps of TEST_STEPS, each as `make <step>`, and end with a summary.
#
#   scripts/test_steps.sh lint sanity test-unit test-roles+test-e2e
#
# A step joined to others with "+" (test-roles+test-e2e+test-ha) is a parallel group: its members start
# at the same time (the machine labs wait on machines, apt and SSH far more than on the CPU, and each
# takes its own local-cloud slot). A member may be a sequence of steps joined with ","
# (test-e2e-core+test-integration,test-roles: the end-to-end run beside the two steps, one after the
# other). A step's output in a group goes to the console as it comes, each line prefixed with [step],
# and whole to $TEST_LOG_DIR/<step>.log; each step gets its own line and time in the summary, the group
# a line with its wall time.
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

# A member: one step, or a sequence of steps joined with ","; each step's output whole into its log and
# prefixed to the console, its exit code and time into <step>.result for the summary. A sequence goes
# on after a failed step (as make test does) unless FAIL_FAST; Ctrl-C ends it after the running step.
run_member() {
    local member=$1 step start rc member_rc=0 stop=
    local -a sequence
    # Ctrl-C reaches this subshell with its steps (one process group): note it, let the running step
    # finish its teardown, keep its result, and start no further step.
    trap 'stop=1' INT TERM
    IFS=, read -r -a sequence <<<"$member"
    for step in "${sequence[@]}"; do
        start=$SECONDS
        # tee and sed ignore SIGINT: they must outlive make to carry pytest's teardown output
        $make_cmd --no-print-directory "$step" 2>&1 | tee -i "$log_dir/$step.log" \
            | (trap '' INT; exec sed -u "s/^/[$step] /")
        rc=${PIPESTATUS[0]}
        echo "$rc $((SECONDS - start))" >"$log_dir/$step.result"
        [ "$rc" = 0 ] || member_rc=$rc
        [ -z "$stop" ] || break
        if [ "$rc" != 0 ] && [ -n "$fail_fast" ]; then
            break
        fi
    done
    return "$member_rc"
}

run_group() {
    local group=$1 start=$SECONDS member step rc seconds others group_result=ok
    local -a members sequence
    IFS=+ read -r -a members <<<"$group"
    mkdir -p "$log_dir"
    echo "=== make ${members[*]//,/ then } (at the same time; logs in $log_dir/<step>.log)"
    members_running=()
    set -m                                  # each member in a process group of its own (see interrupt)
    for member in "${members[@]}"; do
        IFS=, read -r -a sequence <<<"$member"
        for step in "${sequence[@]}"; do rm -f "$log_dir/$step.result"; done
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
        others=$(printf '%s\n' "${members[@]}" | grep -vxF "$member" | paste -sd+ - | sed 's/,/ then /g')
        IFS=, read -r -a sequence <<<"$member"
        for step in "${sequence[@]}"; do
            rc='' seconds=''
            if read -r rc seconds 2>/dev/null <"$log_dir/$step.result" && [ "$rc" = 0 ]; then
                summary+=("$(line "$step" ok "$seconds" "(with $others)")")
            elif [ -n "$rc" ] || [ "$step" = "${sequence[0]}" ]; then
                summary+=("$(line "$step" FAILED "${seconds:-$((SECONDS - start))}" "(with $others; log: $log_dir/$step.log)")")
                failed+=("$step")
                group_result=FAILED
            else
                summary+=("$(line "$step" "-" 0 "(not run: a step before it in its sequence failed or was interrupted)")")
            fi
        done
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
    # CI shows only the end of the output, and a group's failed step may have ended long before the last
    # one: name each failed test here (pytest's short summary lines, from the step's log), last of all.
    for step in "${failed[@]}"; do
        [ -f "$log_dir/$step.log" ] || continue
        {
            grep -E '^E +[A-Za-z.]*(Error|Exception|Failed)\b' "$log_dir/$step.log" | head -n 4
            grep -E '^(FAILED|ERROR) ' "$log_dir/$step.log" | head -n 8
            grep -E '[0-9]+ (failed|errors?)\b.* in [0-9.]+s' "$log_dir/$step.log" | tail -n 1
        } | cut -c 1-300 | sed "s/^/  [$step] /"
    done
    echo "FAILED: ${failed[*]}"
    exit 1
fi
