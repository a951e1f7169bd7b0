package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/reign-go/reign"
)

// AgentID is an agent's global (physical) identifier, the key of its
// entry in the configuration. VirtualID is a destination in an agent's
// routing table. Port is where, at the destination agent, a message
// arrives: an agent tells its inputs apart by port.
type (
	AgentID   uint16
	VirtualID uint16
	Port      uint16
)

// Console is the port on which an agent that reads the console (tty,
// chat) gets the lines of its box's standard input. Routes use ports
// 1-65535.
const Console Port = 0

// A Hop is one physical destination of a route: an agent and the port
// the message arrives on.
type Hop struct {
	Agent AgentID
	Port  Port
}

// AgentInfo is one agent of a configuration, as GoOvid's JSON describes
// it: its type, its box, its attributes (the agent's own business) and
// its routing table, in which one virtual destination may name several
// physical agents: a send to it reaches all of them.
type AgentInfo struct {
	ID     AgentID
	Type   string
	Box    netip.AddrPort
	Attrs  json.RawMessage
	Routes map[VirtualID][]Hop
}

// Config is a whole configuration (a grid): every agent, on every box.
type Config struct {
	Agents map[AgentID]*AgentInfo
	Boxes  []netip.AddrPort // sorted; box i is reign node i+1
}

// agentJSON is an agent's entry in the file. A route maps a virtual
// destination to {"physical agent": port, ...}.
type agentJSON struct {
	Type   string                       `json:"type"`
	Box    string                       `json:"box"`
	Attrs  json.RawMessage              `json:"attrs"`
	Routes map[string]map[string]uint16 `json:"routes"`
}

// LoadConfig reads and checks the configuration in the file at path.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses a configuration and checks that it is whole: every
// route names an agent of the configuration, every box is an IP:port,
// every type is known. Each error names the agent, route or box at fault.
func ParseConfig(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("a configuration is a JSON object of agents keyed by their IDs")
	}
	cfg := &Config{Agents: map[AgentID]*AgentInfo{}}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := t.(string) // object keys are strings
		id, err := parseID(key)
		if err != nil {
			return nil, fmt.Errorf("agent %q: the ID must be a number 0-65535", key)
		}
		if _, dup := cfg.Agents[AgentID(id)]; dup {
			return nil, fmt.Errorf("agent %d: defined twice", id)
		}
		var aj agentJSON
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("agent %d: %w", id, err)
		}
		strict := json.NewDecoder(bytes.NewReader(raw))
		strict.DisallowUnknownFields()
		if err := strict.Decode(&aj); err != nil {
			return nil, fmt.Errorf("agent %d: %w", id, err)
		}
		a, err := aj.info(AgentID(id))
		if err != nil {
			return nil, fmt.Errorf("agent %d: %w", id, err)
		}
		cfg.Agents[a.ID] = a
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if len(cfg.Agents) == 0 {
		return nil, errors.New("no agents")
	}
	for _, a := range cfg.sorted() {
		for _, v := range sortedKeys(a.Routes) {
			for _, h := range a.Routes[v] {
				if _, ok := cfg.Agents[h.Agent]; !ok {
					return nil, fmt.Errorf("agent %d: route %d names agent %d, which is not in the configuration", a.ID, v, h.Agent)
				}
			}
		}
		if !slices.Contains(cfg.Boxes, a.Box) {
			cfg.Boxes = append(cfg.Boxes, a.Box)
		}
	}
	slices.SortFunc(cfg.Boxes, netip.AddrPort.Compare)
	return cfg, nil
}

func (aj *agentJSON) info(id AgentID) (*AgentInfo, error) {
	a := &AgentInfo{ID: id, Type: aj.Type, Attrs: aj.Attrs, Routes: map[VirtualID][]Hop{}}
	if _, ok := agentTypes[aj.Type]; !ok {
		return nil, fmt.Errorf("unknown type %q (known: %s)", aj.Type, strings.Join(sortedKeys(agentTypes), ", "))
	}
	box, err := ParseBox(aj.Box)
	if err != nil {
		return nil, err
	}
	a.Box = box
	if len(a.Attrs) == 0 {
		a.Attrs = json.RawMessage("{}")
	}
	for vs, hops := range aj.Routes {
		v, err := parseID(vs)
		if err != nil {
			return nil, fmt.Errorf("route %q: a virtual destination is a number 0-65535", vs)
		}
		if len(hops) == 0 {
			return nil, fmt.Errorf("route %d: no destination", v)
		}
		for ps, port := range hops {
			p, err := parseID(ps)
			if err != nil {
				return nil, fmt.Errorf("route %d: destination %q: a physical agent is a number 0-65535", v, ps)
			}
			if Port(port) == Console {
				return nil, fmt.Errorf("route %d: destination %d: port 0 is the console's; use 1-65535", v, p)
			}
			a.Routes[VirtualID(v)] = append(a.Routes[VirtualID(v)], Hop{AgentID(p), Port(port)})
		}
		slices.SortFunc(a.Routes[VirtualID(v)], func(x, y Hop) int { return int(x.Agent) - int(y.Agent) })
	}
	return a, nil
}

// ParseBox reads a box, "IP:port", into its canonical form, so that
// "127.0.0.1:5000" and "[::ffff:127.0.0.1]:5000" are the same box.
func ParseBox(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("box %q: want IP:port, as 127.0.0.1:5000 or [::1]:5000", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// NodeID is the reign node that runs box b: the boxes sorted by address
// are nodes 1, 2, ...
func (c *Config) NodeID(b netip.AddrPort) (reign.NodeID, bool) {
	i := slices.Index(c.Boxes, b)
	return reign.NodeID(i + 1), i >= 0
}

// ClusterSpec is the reign cluster of the configuration's boxes: box i
// (in address order) is node i+1 and listens on the box's address; the
// certificates are those reign_init writes in certDir.
func (c *Config) ClusterSpec(certDir string) (*reign.ClusterSpec, error) {
	spec := &reign.ClusterSpec{
		NodeCertPath:    filepath.Join(certDir, "reign_node.%d.crt"),
		NodeKeyPath:     filepath.Join(certDir, "reign_node.%d.key"),
		ClusterCertPath: filepath.Join(certDir, "reign_ca.crt"),
	}
	for i, b := range c.Boxes {
		spec.Nodes = append(spec.Nodes, reign.NodeSpec{ID: reign.NodeID(i + 1), Address: b.String()})
	}
	return spec, spec.Validate()
}

// AgentsOn lists the agents of box b, by ID.
func (c *Config) AgentsOn(b netip.AddrPort) []*AgentInfo {
	var out []*AgentInfo
	for _, a := range c.sorted() {
		if a.Box == b {
			out = append(out, a)
		}
	}
	return out
}

func (c *Config) sorted() []*AgentInfo {
	var out []*AgentInfo
	for _, id := range sortedKeys(c.Agents) {
		out = append(out, c.Agents[id])
	}
	return out
}

func parseID(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err
}

func sortedKeys[K interface{ ~uint16 | ~string }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
