# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_sfc_global_optspecs
    string join \n netns= pin-dir= h/help V/version
end

function __fish_sfc_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_sfc_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_sfc_using_subcommand
    set -l cmd (__fish_sfc_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c sfc -n "__fish_sfc_needs_command" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_needs_command" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_needs_command" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_needs_command" -s V -l version -d 'Print version'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "validate" -d 'Parse and validate a chain file; print every problem with its line'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "apply" -d 'Install a chain file, or update the running datapath to it'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "down" -d 'Detach everything, unpin, and leave the interfaces as they were'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "stats" -d 'Per chain / hop / member packets and bytes, and drops by reason'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "explain" -d 'Which classifier, chain, members and interfaces a packet takes: from FILE (no kernel needed) or from the installed state'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "status" -d 'Attached interfaces and their roles, the program, the chains, and map fill levels'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "flows" -d 'The flow table, decoded: 5-tuple, chain, the port pair picked at each hop'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "map" -d 'Every pinned map (`map list`) or one map\'s entries decoded into names (`map dump NAME`)'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "trace" -d 'The live path of matching packets through their chains, from the datapath\'s own hop decisions; Ctrl-C ends it'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "import" -d 'Read networking-sfc\'s API objects into a chain file (`sfc import neutron FILE...`)'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "export" -d 'Write a chain file as networking-sfc\'s API objects (`sfc export neutron [-f FILE]`)'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "push" -d 'Multi-host: validate a chain file and store it in etcd for every host\'s `sfc run --etcd`'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "run" -d 'Daemon: apply FILE, re-apply it when it changes, fail members over when their links go down, serve Prometheus metrics; Ctrl-C or SIGTERM leaves the datapath installed'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "completions" -d 'Print a shell completion script: `sfc completions bash > /etc/bash_completion.d/sfc`'
complete -c sfc -n "__fish_sfc_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfc -n "__fish_sfc_using_subcommand validate" -s f -l file -d 'The chain file (YAML or JSON)' -r
complete -c sfc -n "__fish_sfc_using_subcommand validate" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand validate" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand validate" -l json -d 'Print JSON: `{"file":..,"ok":bool,"problems":[{"kind","resource","field","line","message"}]}`'
complete -c sfc -n "__fish_sfc_using_subcommand validate" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand apply" -s f -l file -d 'The chain file (YAML or JSON)' -r
complete -c sfc -n "__fish_sfc_using_subcommand apply" -l mode -d 'Attach mode of every interface the file\'s `interfaces:` section does not set' -r -f -a "tc\t'tc ingress programs (tcx links): the default; keeps GSO and checksum offload, fastest for traffic that arrives as skbs (veth, tap)'
xdp\t'Native XDP programs, redirecting through a devmap; the far ends of the veths it redirects into get an XDP pass program. Offloaded TCP/UDP checksums are completed in the program'"
complete -c sfc -n "__fish_sfc_using_subcommand apply" -l flow-table-size -d 'Flow table entries, set when the datapath is first loaded (about 200 bytes each: the maximum, 4194304, locks ~800 MB of kernel memory)' -r
complete -c sfc -n "__fish_sfc_using_subcommand apply" -l drain-timeout -d 'Seconds a port pair removed from its group keeps serving the flows it already has (0: move them at once). A one-shot apply removes it at the first `sfc apply` once that time is up; `sfc run` removes it on time' -r
complete -c sfc -n "__fish_sfc_using_subcommand apply" -l new-flow-rate -d 'New flow entries each CPU may create per second (0: no cap). Past it, new flows are still steered through their chain but get no entry, so a flood of new 5-tuples cannot push established flows out of the table. Counted as capped in `sfc stats`' -r
complete -c sfc -n "__fish_sfc_using_subcommand apply" -l sf-latency-every -d 'Time the service functions with 1 packet in N (chosen by bytes that routing does not change, so the same packet is recognised when it comes back): per member histograms in `sfc stats` and the metrics. 0: off' -r
complete -c sfc -n "__fish_sfc_using_subcommand apply" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand apply" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand apply" -l json -d 'Print one JSON object instead of text: the generation, the map changes, the resource counts and the lists the text shows (README, "Scripting sfc")'
complete -c sfc -n "__fish_sfc_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfc -n "__fish_sfc_using_subcommand down" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand down" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand down" -l json -d 'Print one JSON object instead of text: the pin directory, whether anything was installed, links detached, pins removed, the overlay device removed (README, "Scripting sfc")'
complete -c sfc -n "__fish_sfc_using_subcommand down" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand stats" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand stats" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand stats" -l json -d 'Print JSON (shape in DESIGN.md section 4)'
complete -c sfc -n "__fish_sfc_using_subcommand stats" -l watch -d 'Refresh every second with packet rates, until interrupted'
complete -c sfc -n "__fish_sfc_using_subcommand stats" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand explain" -s f -l file -d 'Answer from this chain file instead of the installed state (no kernel needed)' -r
complete -c sfc -n "__fish_sfc_using_subcommand explain" -l in -d 'The interface the packet arrives on' -r
complete -c sfc -n "__fish_sfc_using_subcommand explain" -l proto -d 'IP protocol: tcp, udp, icmp, icmpv6, sctp, udplite or a number' -r
complete -c sfc -n "__fish_sfc_using_subcommand explain" -l src -d 'Source address' -r
complete -c sfc -n "__fish_sfc_using_subcommand explain" -l dst -d 'Destination address' -r
complete -c sfc -n "__fish_sfc_using_subcommand explain" -l sport -d 'Source port (protocols with ports only; 0 when not given)' -r
complete -c sfc -n "__fish_sfc_using_subcommand explain" -l dport -d 'Destination port (protocols with ports only; 0 when not given)' -r
complete -c sfc -n "__fish_sfc_using_subcommand explain" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand explain" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand explain" -l json -d 'Print JSON'
complete -c sfc -n "__fish_sfc_using_subcommand explain" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand status" -l etcd -d 'Multi-host: show every host\'s agent as etcd at URL[,URL...] has it (the configuration revision each runs) instead of this host\'s datapath' -r
complete -c sfc -n "__fish_sfc_using_subcommand status" -l etcd-prefix -d 'Key prefix in etcd' -r
complete -c sfc -n "__fish_sfc_using_subcommand status" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand status" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand status" -l json -d 'Print JSON'
complete -c sfc -n "__fish_sfc_using_subcommand status" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand flows" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand flows" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand flows" -l json -d 'Print JSON: `{"capacity":N,"flows":[...]}` (with `--flush`: `{"flushed":N}`)'
complete -c sfc -n "__fish_sfc_using_subcommand flows" -l flush -d 'Forget every flow entry (like `conntrack -F`). Traffic is not disturbed: each flow\'s path is recomputed at its next packet; members stay the same unless the configuration changed since the flow started'
complete -c sfc -n "__fish_sfc_using_subcommand flows" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand map; and not __fish_seen_subcommand_from list dump help" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand map; and not __fish_seen_subcommand_from list dump help" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand map; and not __fish_seen_subcommand_from list dump help" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand map; and not __fish_seen_subcommand_from list dump help" -f -a "list" -d 'Every pinned map: type, key and value size, capacity and current entries'
complete -c sfc -n "__fish_sfc_using_subcommand map; and not __fish_seen_subcommand_from list dump help" -f -a "dump" -d 'Every entry of one map, decoded into chain, group, port pair and interface names'
complete -c sfc -n "__fish_sfc_using_subcommand map; and not __fish_seen_subcommand_from list dump help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from list" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from list" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from list" -l json -d 'Print JSON'
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from dump" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from dump" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from dump" -l json -d 'Print JSON: an array of objects, one per entry'
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from dump" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from help" -f -a "list" -d 'Every pinned map: type, key and value size, capacity and current entries'
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from help" -f -a "dump" -d 'Every entry of one map, decoded into chain, group, port pair and interface names'
complete -c sfc -n "__fish_sfc_using_subcommand map; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l chain -d 'Only packets of this port chain (by name)' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l src -d 'Only packets from this address (IPv4 or IPv6)' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l dst -d 'Only packets to this address' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l proto -d 'Only packets of this protocol (tcp, udp, icmp, icmpv6, sctp or a number)' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l sport -d 'Only packets from this transport port' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l dport -d 'Only packets to this transport port' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l in -d 'With --probe: the interface the probe arrives on (a logical source port, or a member\'s egress to probe from the middle of a chain)' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l sample -d 'Trace one matching packet in N (chosen by bytes that routing does not change, so all the hops of a traced packet are traced)' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l budget -d 'Events each CPU may emit per second; past it they are counted as lost (the datapath never pays more than this for tracing)' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l count -d 'Stop after K packets (with --json: K events)' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l duration -d 'Stop after S seconds' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l probe -d 'Instead of watching traffic: run one synthetic packet (--proto, --src, --dst, --sport, --dport) through the live datapath as if it arrived on --in, and report each hop it took and where it ended. It runs on a private copy (`BPF_PROG_TEST_RUN`): nothing is sent on any wire and the destination never receives it'
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l json -d 'Print each event as a JSON line (with --probe: the report as one JSON object)'
complete -c sfc -n "__fish_sfc_using_subcommand trace" -l follow -d 'Group by flow: a line when a flow appears or its path changes, and a flow table at the end'
complete -c sfc -n "__fish_sfc_using_subcommand trace" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand import; and not __fish_seen_subcommand_from neutron help" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand import; and not __fish_seen_subcommand_from neutron help" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand import; and not __fish_seen_subcommand_from neutron help" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand import; and not __fish_seen_subcommand_from neutron help" -f -a "neutron" -d 'networking-sfc\'s API objects (JSON: `GET /v2.0/sfc/...` bodies, or `openstack sfc ... list --long -f json` / `show -f json` output) -> a chain file that keeps every name, id and description. Ports become the taps nova plugs them into'
complete -c sfc -n "__fish_sfc_using_subcommand import; and not __fish_seen_subcommand_from neutron help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfc -n "__fish_sfc_using_subcommand import; and __fish_seen_subcommand_from neutron" -s o -l output -d 'Write the chain file here instead of standard output' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand import; and __fish_seen_subcommand_from neutron" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand import; and __fish_seen_subcommand_from neutron" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand import; and __fish_seen_subcommand_from neutron" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "neutron" -d 'networking-sfc\'s API objects (JSON: `GET /v2.0/sfc/...` bodies, or `openstack sfc ... list --long -f json` / `show -f json` output) -> a chain file that keeps every name, id and description. Ports become the taps nova plugs them into'
complete -c sfc -n "__fish_sfc_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfc -n "__fish_sfc_using_subcommand export; and not __fish_seen_subcommand_from neutron help" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand export; and not __fish_seen_subcommand_from neutron help" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand export; and not __fish_seen_subcommand_from neutron help" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand export; and not __fish_seen_subcommand_from neutron help" -f -a "neutron" -d 'A chain file (or the applied one) as networking-sfc\'s API objects: one JSON object with `port_pairs`, `port_pair_groups`, `flow_classifiers` and `port_chains`, ids where the file gives them'
complete -c sfc -n "__fish_sfc_using_subcommand export; and not __fish_seen_subcommand_from neutron help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfc -n "__fish_sfc_using_subcommand export; and __fish_seen_subcommand_from neutron" -s f -l file -d 'The chain file [default: the one applied to the datapath]' -r
complete -c sfc -n "__fish_sfc_using_subcommand export; and __fish_seen_subcommand_from neutron" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand export; and __fish_seen_subcommand_from neutron" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand export; and __fish_seen_subcommand_from neutron" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "neutron" -d 'A chain file (or the applied one) as networking-sfc\'s API objects: one JSON object with `port_pairs`, `port_pair_groups`, `flow_classifiers` and `port_chains`, ids where the file gives them'
complete -c sfc -n "__fish_sfc_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfc -n "__fish_sfc_using_subcommand push" -s f -l file -d 'The chain file (YAML or JSON)' -r
complete -c sfc -n "__fish_sfc_using_subcommand push" -l etcd -d 'etcd endpoints, URL[,URL...] (v3 API)' -r
complete -c sfc -n "__fish_sfc_using_subcommand push" -l etcd-prefix -d 'Key prefix in etcd' -r
complete -c sfc -n "__fish_sfc_using_subcommand push" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand push" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand push" -l json -d 'Print JSON: {"file", "revision", "chains"}'
complete -c sfc -n "__fish_sfc_using_subcommand push" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand run" -s f -l file -d 'The chain file (YAML or JSON); re-applied whenever its content changes' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l etcd -d 'Multi-host: take the chain file from etcd (`sfc push`) at URL[,URL...] instead of -f, publish this host\'s ports there and reach other hosts\' over the overlay' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l node -d 'This host\'s name among the hosts (unique)' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l vtep -d 'This host\'s underlay address: other hosts send overlay (VXLAN) packets for it here' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l overlay-dev -d 'The overlay device: created (VXLAN, external, UDP 4789) when it does not exist' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l overlay-mtu -d 'MTU of the overlay device when sfc creates it (default: the kernel\'s, 1450): at most the underlay\'s MTU less 50 (IPv4 underlay) or 70 (IPv6)' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l etcd-prefix -d 'Key prefix in etcd' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l lease-ttl -d 'Seconds without renewal after which etcd drops this host\'s ports (its members then fail over on every host)' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l metrics -d 'Serve Prometheus metrics on ADDR (path /metrics)' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l interval -d 'Seconds between two looks at FILE' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l health-interval -d 'Milliseconds between two looks at the link state of every port pair\'s interfaces; a member whose interface goes down fails over (its flows move to the other members)' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l flow-table-size -d 'Flow table entries (set when the datapath is first loaded; at most 4194304)' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l drain-timeout -d 'Seconds a port pair removed from its group keeps serving the flows it already has (0: move them at once)' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l mode -d 'Attach mode of every interface the file\'s `interfaces:` section does not set' -r -f -a "tc\t'tc ingress programs (tcx links): the default; keeps GSO and checksum offload, fastest for traffic that arrives as skbs (veth, tap)'
xdp\t'Native XDP programs, redirecting through a devmap; the far ends of the veths it redirects into get an XDP pass program. Offloaded TCP/UDP checksums are completed in the program'"
complete -c sfc -n "__fish_sfc_using_subcommand run" -l new-flow-rate -d 'New flow entries each CPU may create per second (0: no cap); see `sfc apply --help`' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l sf-latency-every -d 'Time the service functions with 1 packet in N (chosen by bytes that routing does not change, so the same packet is recognised when it comes back): per member histograms in `sfc stats` and the metrics. 0: off' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l flow-idle-timeout -d 'Seconds without a packet after which a flow entry is removed (its next packet, if any, starts it again, on the same members unless the configuration changed)' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l flow-close-grace -d 'Seconds a closed TCP flow (FIN or RST seen) and a flow no classifier matches any more keep their entry after their last packet' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand run" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand run" -l json -d 'Log lines as JSON objects on stdout, one per line: {"ts","level","msg"} (`ts` in seconds since the Unix epoch); without it, text on stderr (under systemd: journal priorities)'
complete -c sfc -n "__fish_sfc_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfc -n "__fish_sfc_using_subcommand completions" -l netns -d 'Operate on interfaces inside this network namespace (as named by `ip netns`)' -r
complete -c sfc -n "__fish_sfc_using_subcommand completions" -l pin-dir -d 'Where the programs, links and maps are pinned [default: /sys/fs/bpf/sfc/<netns or host>]' -r -F
complete -c sfc -n "__fish_sfc_using_subcommand completions" -s h -l help -d 'Print help'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "validate" -d 'Parse and validate a chain file; print every problem with its line'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "apply" -d 'Install a chain file, or update the running datapath to it'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "down" -d 'Detach everything, unpin, and leave the interfaces as they were'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "stats" -d 'Per chain / hop / member packets and bytes, and drops by reason'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "explain" -d 'Which classifier, chain, members and interfaces a packet takes: from FILE (no kernel needed) or from the installed state'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "status" -d 'Attached interfaces and their roles, the program, the chains, and map fill levels'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "flows" -d 'The flow table, decoded: 5-tuple, chain, the port pair picked at each hop'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "map" -d 'Every pinned map (`map list`) or one map\'s entries decoded into names (`map dump NAME`)'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "trace" -d 'The live path of matching packets through their chains, from the datapath\'s own hop decisions; Ctrl-C ends it'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "import" -d 'Read networking-sfc\'s API objects into a chain file (`sfc import neutron FILE...`)'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "export" -d 'Write a chain file as networking-sfc\'s API objects (`sfc export neutron [-f FILE]`)'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "push" -d 'Multi-host: validate a chain file and store it in etcd for every host\'s `sfc run --etcd`'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "run" -d 'Daemon: apply FILE, re-apply it when it changes, fail members over when their links go down, serve Prometheus metrics; Ctrl-C or SIGTERM leaves the datapath installed'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "completions" -d 'Print a shell completion script: `sfc completions bash > /etc/bash_completion.d/sfc`'
complete -c sfc -n "__fish_sfc_using_subcommand help; and not __fish_seen_subcommand_from validate apply down stats explain status flows map trace import export push run completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfc -n "__fish_sfc_using_subcommand help; and __fish_seen_subcommand_from map" -f -a "list" -d 'Every pinned map: type, key and value size, capacity and current entries'
complete -c sfc -n "__fish_sfc_using_subcommand help; and __fish_seen_subcommand_from map" -f -a "dump" -d 'Every entry of one map, decoded into chain, group, port pair and interface names'
complete -c sfc -n "__fish_sfc_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "neutron" -d 'networking-sfc\'s API objects (JSON: `GET /v2.0/sfc/...` bodies, or `openstack sfc ... list --long -f json` / `show -f json` output) -> a chain file that keeps every name, id and description. Ports become the taps nova plugs them into'
complete -c sfc -n "__fish_sfc_using_subcommand help; and __fish_seen_subcommand_from export" -f -a "neutron" -d 'A chain file (or the applied one) as networking-sfc\'s API objects: one JSON object with `port_pairs`, `port_pair_groups`, `flow_classifiers` and `port_chains`, ids where the file gives them'
