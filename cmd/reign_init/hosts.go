package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/reign-go/reign/internal/certs"
)

// nodePlan is what reign_init makes for one node: the hosts that go into
// its certificate (the first is also the host of its address in the spec)
// and its port (0: the -port base plus its ID).
type nodePlan struct {
	id    uint16
	hosts []string
	port  int
}

// parseHosts adds to plans the nodes and hosts of -hosts: comma-separated ID=HOST or ID=HOST:PORT
// entries. An ID given again adds a host to the same node (one port per
// node: give it once, or the same each time). An IPv6 address with a port
// is written in brackets: 3=[fd00::3]:4000.
func parseHosts(plans map[uint16]*nodePlan, list string) error {
	n := 0
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if _, err := addHost(plans, entry); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("-hosts %q names no node; write ID=HOST entries, as in -hosts 1=db1.example.com,2=10.0.0.2", list)
	}
	return nil
}

// addHost adds one ID=HOST[:PORT] entry (or a bare ID, with no host) to
// plans and returns the node's ID.
func addHost(plans map[uint16]*nodePlan, entry string) (uint16, error) {
	idText, hostPort, hasHost := strings.Cut(entry, "=")
	id, err := strconv.ParseUint(strings.TrimSpace(idText), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q: the node ID before '=' must be a number 0-65535", entry)
	}
	p := plans[uint16(id)]
	if p == nil {
		p = &nodePlan{id: uint16(id)}
		plans[p.id] = p
	}
	if !hasHost {
		return p.id, nil
	}
	host, port := strings.TrimSpace(hostPort), 0
	if h, ps, err := net.SplitHostPort(host); err == nil {
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%q: the port must be a number 1-65535", entry)
		}
		host, port = h, int(n)
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host == "" {
		return 0, fmt.Errorf("%q: no host after '='", entry)
	}
	if err := certs.CheckHost(host); err != nil {
		return 0, fmt.Errorf("%q: %w", entry, err)
	}
	if port != 0 {
		if p.port != 0 && p.port != port {
			return 0, fmt.Errorf("%q: node %d already has port %d; a node listens on one port", entry, p.id, p.port)
		}
		p.port = port
	}
	if !slices.Contains(p.hosts, host) {
		p.hosts = append(p.hosts, host)
	}
	return p.id, nil
}

// sortedPlans returns the plans by ascending ID.
func sortedPlans(plans map[uint16]*nodePlan) []*nodePlan {
	out := make([]*nodePlan, 0, len(plans))
	for _, p := range plans {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *nodePlan) int { return int(a.id) - int(b.id) })
	return out
}
