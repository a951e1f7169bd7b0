package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reign-go/reign"
)

// Msg is what travels between agents: GoOvid's message (a line of text
// for a port of the destination agent), with the sender's ID.
type Msg struct {
	From AgentID
	Port Port
	Data string
}

// agentName is the registry name of an agent's mailbox: agents find one
// another through reign's cluster-wide registry, by global ID.
func agentName(id AgentID) string { return "goovid/agent/" + strconv.Itoa(int(id)) }

// A Box is one OS process of a grid, and one reign node: it runs the
// agents the configuration puts on it, each with a mailbox registered
// under its ID, and routes their sends.
type Box struct {
	cfg    *Config
	addr   netip.AddrPort
	node   *reign.Node
	out    *printer
	router router
	agents []*runner // this box's own agents
}

// A runner is one agent of this box with its mailbox.
type runner struct {
	info    *AgentInfo
	agent   Agent
	console bool
	addr    reign.Address
	mb      *reign.Mailbox
}

// NewBox checks the configuration whole (every agent's Init, on every
// box) and makes the reign node of box addr, with the certificates in
// certDir. It starts nothing.
func NewBox(cfg *Config, addr netip.AddrPort, certDir string, out *printer) (*Box, error) {
	b := &Box{cfg: cfg, addr: addr, out: out}
	for _, info := range cfg.sorted() {
		t := agentTypes[info.Type]
		a := t.new()
		if err := a.Init(info.Attrs, b.env(info)); err != nil {
			return nil, fmt.Errorf("agent %d (%s, on box %v): %w", info.ID, info.Type, info.Box, err)
		}
		if info.Box == addr {
			b.agents = append(b.agents, &runner{info: info, agent: a, console: t.console})
		}
	}
	id, ok := cfg.NodeID(addr)
	if !ok {
		return nil, fmt.Errorf("box %v is not in the configuration: no agent lives there (its boxes: %s)", addr, boxList(cfg.Boxes))
	}
	spec, err := cfg.ClusterSpec(certDir)
	if err != nil {
		return nil, err
	}
	b.node, err = reign.NewNode(reign.Config{NodeID: id, Cluster: spec})
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w\nthe %d boxes are reign nodes 1-%d: make their certificates with\n  go run ./cmd/reign_init -nodes %d -dir %s",
			err, len(cfg.Boxes), len(cfg.Boxes), len(cfg.Boxes), certDir)
	}
	if err != nil {
		return nil, err
	}
	if err := b.node.RegisterType(Msg{}); err != nil {
		return nil, err
	}
	b.router = router{node: b.node, dests: map[AgentID]*dest{}, say: func(format string, a ...any) {
		out.Printf("box %v: "+format, append([]any{addr}, a...)...)
	}}
	return b, nil
}

// env is what agent info gets from its box: Send goes through the routing
// table to the router.
func (b *Box) env(info *AgentInfo) Env {
	return Env{
		ID: info.ID,
		Send: func(v VirtualID, data string) error {
			hops, ok := info.Routes[v]
			if !ok {
				return fmt.Errorf("no route %d", v)
			}
			for _, h := range hops { // several: a multicast
				b.router.send(h.Agent, Msg{From: info.ID, Port: h.Port, Data: data})
			}
			return nil
		},
		HasRoute: func(v VirtualID) bool { _, ok := info.Routes[v]; return ok },
		Printf:   b.out.Printf,
	}
}

// Serve runs the box until ctx ends, or its standard input does if an
// agent of the box reads it (a tty, a chat). Every goroutine it starts has
// ended when it returns, except the one reading stdin, which no Go code can
// interrupt; the process exits after it anyway.
func (b *Box) Serve(ctx context.Context, stdin io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}

	id := b.node.ID()
	wg.Go(func() {
		if err := b.node.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
			fail(err)
		}
	})
	watcher, wmb := b.node.NewMailbox() // links to routed agents report here
	b.router.watcher = watcher
	wg.Go(func() { b.router.loop(ctx, wmb) })

	b.out.Printf("box %v is reign node %d of %d", b.addr, id, len(b.cfg.Boxes))
	var console []reign.Address
	for _, r := range b.agents {
		r.addr, r.mb = b.node.NewMailbox()
		if r.console {
			console = append(console, r.addr)
		}
		wg.Go(func() {
			if err := r.run(ctx, b); err != nil {
				fail(err)
			}
		})
	}
	if len(console) > 0 {
		go func() { // not waited for: see above
			sc := bufio.NewScanner(stdin)
			for sc.Scan() {
				for _, a := range console {
					_ = a.Send(Msg{Port: Console, Data: sc.Text()}) // fails only once closed
				}
			}
			cancel() // end of input: the box stops
		}()
	}
	<-ctx.Done()
	wg.Wait()
	b.out.Printf("box %v stopped", b.addr)
	return firstErr
}

// run is one agent's life: Run, then its name, then Deliver for each
// message until ctx ends, then Halt.
func (r *runner) run(ctx context.Context, b *Box) error {
	defer r.mb.Close()
	id := r.info.ID
	if err := r.agent.Run(); err != nil {
		return fmt.Errorf("agent %d (%s): %w", id, r.info.Type, err)
	}
	defer r.agent.Halt()
	if err := b.node.Register(agentName(id), r.addr); err != nil {
		return fmt.Errorf("agent %d: %w", id, err)
	}
	b.out.Printf("box %v: agent %d (%s) up", b.addr, id, r.info.Type)
	for {
		v, err := r.mb.Receive(ctx)
		if err != nil {
			return nil // ctx ended
		}
		switch m := v.(type) {
		case Msg:
			if err := r.agent.Deliver(m.Data, m.Port); err != nil {
				from := "console line"
				if m.Port != Console {
					from = fmt.Sprintf("message from agent %d", m.From)
				}
				b.out.Printf("agent %d: %v (%s dropped)", id, err, from)
			}
		case reign.MultipleClaim: // the same agent started on two boxes
			b.out.Printf("agent %d: also running elsewhere (%s claimed twice): check the boxes' configurations", id, m.Name)
		}
	}
}

// The router sends agents' messages to the physical agents of their
// routes, finding each by its registered name and keeping its Address,
// linked (OnCloseNotify) so that when that mailbox closes or its box is
// lost the Address is dropped and the name looked up again. Messages to
// an agent not (yet, or no longer) reachable wait, in order, up to
// maxPending of them, and go out when it is back.
//
// One mutex keeps each destination's messages in order; a remote Send
// made under it can wait while that peer's send buffer is full (reign's
// back-pressure), holding up the box's other senders meanwhile: simple,
// and right for an example.
type router struct {
	node    *reign.Node
	watcher reign.Address
	say     func(format string, a ...any)

	mu    sync.Mutex
	dests map[AgentID]*dest
}

type dest struct {
	addr    reign.Address // zero: not resolved
	lost    bool          // its mailbox closed: look it up again, even with nothing to send
	pending []Msg
	dropped int // messages dropped because pending was full
}

const (
	maxPending = 1024
	// retryEvery is how often the names of agents that have messages
	// waiting are looked up again: the registry cannot tell us when a
	// name appears (see README, "Where reign fell short").
	retryEvery = 50 * time.Millisecond
)

func (r *router) send(to AgentID, m Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dests[to]
	if d == nil {
		d = &dest{}
		r.dests[to] = d
	}
	if len(d.pending) == 0 && r.deliver(to, d, m) {
		return
	}
	if len(d.pending) == maxPending {
		d.pending = d.pending[1:]
		if d.dropped++; d.dropped == 1 {
			r.say("agent %d unreachable with %d messages waiting: dropping the oldest", to, maxPending)
		}
	}
	d.pending = append(d.pending, m)
}

// deliver sends m to agent to, looking its name up if need be; false if
// the agent cannot be reached now. r.mu is held.
func (r *router) deliver(to AgentID, d *dest, m Msg) bool {
	if !r.resolve(to, d) {
		return false
	}
	if err := d.addr.Send(m); err != nil {
		d.addr.RemoveNotify(r.watcher)
		d.addr = reign.Address{}
		return false
	}
	return true
}

// resolve looks agent to up if its Address is not known, and links to
// it; false if its name is not registered (yet, or any more). r.mu is
// held.
func (r *router) resolve(to AgentID, d *dest) bool {
	if !d.addr.IsZero() {
		return true
	}
	a, ok := r.node.Lookup(agentName(to))
	if !ok {
		return false
	}
	d.addr, d.lost = a, false
	a.OnCloseNotify(r.watcher)
	r.say("agent %d is %v, on node %d", to, a, a.NodeID())
	return true
}

// loop takes the links' MailboxClosed and retries waiting messages,
// until ctx ends.
func (r *router) loop(ctx context.Context, mb *reign.Mailbox) {
	defer mb.Close()
	for ctx.Err() == nil {
		wait, cancel := context.WithTimeout(ctx, retryEvery)
		v, err := mb.Receive(wait)
		cancel()
		if mc, ok := v.(reign.MailboxClosed); ok && err == nil && ctx.Err() == nil { // (not our own agents closing at the end)
			r.lost(mc)
		}
		r.flush()
	}
}

func (r *router) lost(mc reign.MailboxClosed) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, d := range r.dests {
		if d.addr == mc.Address {
			d.addr, d.lost = reign.Address{}, true
			r.say("agent %d at %v is gone (%v): messages to it wait for it to come back", id, mc.Address, mc.Reason)
		}
	}
}

func (r *router) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, d := range r.dests {
		if d.lost {
			r.resolve(id, d) // back, or not yet
		}
		for len(d.pending) > 0 && r.deliver(id, d, d.pending[0]) {
			d.pending[0] = Msg{}
			d.pending = d.pending[1:]
		}
		if len(d.pending) == 0 && d.dropped > 0 {
			r.say("agent %d reachable again; %d messages to it were dropped", id, d.dropped)
			d.dropped = 0
		}
	}
}

// printer writes whole lines to the box's output from any goroutine.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

// Printf prints one line.
func (p *printer) Printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", a...)
}

func boxList(boxes []netip.AddrPort) string {
	s := make([]string, len(boxes))
	for i, b := range boxes {
		s[i] = b.String()
	}
	return strings.Join(s, ", ")
}
