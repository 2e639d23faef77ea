# What site.yml's roles set up on a host that can change without a file under /etc changing: the host
# firewall's rules (without counters and the elements of its sets, which change with traffic) and the
# state of every enabled unit (a service stopped by hand). site.yml keeps its hash in the record of a
# complete run and compares it on the next run.
# A host without either gives the same (empty) part on every run: it never fails the run.
nft -s -t list table inet host_firewall 2>/dev/null || true
{ systemctl list-unit-files --state=enabled --type=service,socket,timer --no-legend 2>/dev/null \
    | awk '$1 !~ /@\./ {print $1}' | sort | xargs -r systemctl show -p Id -p ActiveState -- 2>/dev/null; } || true
