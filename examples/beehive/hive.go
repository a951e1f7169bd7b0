package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/reign-go/reign"
)

// The hello-world application's names, as Beehive spells them.
const (
	appName  = "hello-world"
	dictName = "hello"
)

// Hello is the application's message: one more hello from Name. Its Map
// is the cell (dictionary "hello", key Name).
type Hello struct {
	Name string
}

// Count is a bee's reply to Hello (Beehive's ctx.ReplyTo): the count
// after this hello, and the node of the bee that counted it.
type Count struct {
	N    uint64
	Hive reign.NodeID
}

// Handover moves a cell to the bee that keeps it: a bee that lost a
// race for Name (or came back from a restart to find Name taken) sends
// its count to the keeper, which adds it and replies Count.
type Handover struct {
	Name string
	N    uint64
	From reign.NodeID
}

// Ping asks a hive to answer Pong: a new bee pings every hive it can see
// before it counts, so that its claim has reached them (see bee.start).
type Ping struct{}

// Pong answers Ping.
type Pong struct{}

var messageTypes = []any{Hello{}, Count{}, Handover{}, Ping{}, Pong{}}

// beeName is the registry name of the bee that owns key of the hello
// dictionary: Beehive's registry entry for that cell.
func beeName(key string) string { return "beehive/" + appName + "/" + dictName + "/" + key }

// hiveName is the registry name of node id's hive mailbox.
func hiveName(id reign.NodeID) string { return fmt.Sprintf("beehive/hive/%d", id) }

// A hive is Beehive's server on one node: it makes the local bees (one
// goroutine and mailbox each, one per key they own), keeps the node's
// dictionary file, and answers other hives' pings. Safe for concurrent use.
type hive struct {
	node  *reign.Node
	dict  *dict
	peers []reign.NodeID // the other nodes of the spec
	say   func(format string, a ...any)
	ctx   context.Context // the bees run until it ends

	mu   sync.Mutex
	bees map[string]reign.Address // key -> the local bee that claims it
	wg   sync.WaitGroup           // the bees and the hive's own loop
}

// startHive registers the hive, starts a bee for every key in the
// dictionary file (each re-registers its key), and serves pings until
// ctx ends; wait for it with h.wg.
func startHive(ctx context.Context, node *reign.Node, d *dict, peers []reign.NodeID, say func(string, ...any)) (*hive, int, error) {
	h := &hive{node: node, dict: d, peers: peers, say: say, ctx: ctx, bees: map[string]reign.Address{}}
	addr, mb := node.NewMailbox()
	if err := node.Register(hiveName(node.ID()), addr); err != nil {
		mb.Close()
		return nil, 0, err
	}
	h.wg.Add(1)
	go h.loop(mb)
	loaded := 0
	err := d.ForEach(func(key string, n uint64) {
		h.mu.Lock()
		h.startBee(key, n, false)
		h.mu.Unlock()
		loaded++
	})
	return h, loaded, err
}

// loop answers pings until the hive's context ends.
func (h *hive) loop(mb *reign.Mailbox) {
	defer h.wg.Done()
	defer mb.Close()
	for {
		m, err := mb.Receive(h.ctx)
		if err != nil {
			return
		}
		if req, ok := m.(reign.Request); ok {
			if _, ok := req.Body.(Ping); ok {
				_ = req.Reply(Pong{})
			}
		}
	}
}

// Sync sends hello to the bee that owns its name and waits for its count:
// Beehive's Sync. The owner is found in the registry; if nobody owns the
// name, a bee is made here (Beehive's default placement: the local hive).
// A bee that gives its cell up closes, failing the calls it had not
// answered: those are sent again to the new owner.
func (h *hive) Sync(ctx context.Context, hello Hello) (Count, error) {
	for attempt := 0; ; attempt++ {
		bee := h.owner(hello.Name)
		v, err := reign.Call(ctx, bee, hello)
		if err == nil {
			c, ok := v.(Count)
			if !ok {
				return Count{}, fmt.Errorf("bee %v replied %T", bee, v)
			}
			return c, nil
		}
		if !errors.Is(err, reign.ErrMailboxClosed) || ctx.Err() != nil || attempt == 100 {
			return Count{}, err
		}
		if attempt > 2 { // a yielding bee's release is on its way: don't spin
			select {
			case <-ctx.Done():
				return Count{}, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// owner returns the bee that owns key, making a local one if nobody does.
func (h *hive) owner(key string) reign.Address {
	if a, ok := h.node.Lookup(beeName(key)); ok {
		return a
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.node.Lookup(beeName(key)); ok { // made meanwhile?
		return a
	}
	return h.startBee(key, 0, true)
}

// startBee makes, registers and starts the local bee for key, holding
// count; fresh is for a key new to this node. Called with h.mu held.
func (h *hive) startBee(key string, count uint64, fresh bool) reign.Address {
	addr, mb := h.node.NewMailbox()
	b := &bee{h: h, key: key, name: beeName(key), addr: addr, mb: mb, n: count,
		linked: map[reign.Address]bool{}}
	if err := h.node.Register(b.name, addr); err != nil {
		h.say("bee %s: cannot register: %v", b.name, err) // a name too long: its calls fail
		mb.Close()
		return addr
	}
	h.bees[key] = addr
	if fresh {
		h.say("bee %s: created on hive %d", b.name, h.node.ID())
	}
	h.wg.Add(1)
	go b.run(fresh)
	return addr
}

// gone forgets the local bee at addr for key.
func (h *hive) gone(key string, addr reign.Address) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bees[key] == addr {
		delete(h.bees, key)
	}
}

// pingPeers calls every hive this node sees, and returns when each has
// answered, failed, or taken a second.
func (h *hive) pingPeers() {
	var wg sync.WaitGroup
	for _, id := range h.peers {
		a, ok := h.node.Lookup(hiveName(id))
		if !ok {
			continue // not connected: the registry reconciles when it is
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(h.ctx, time.Second)
			defer cancel()
			_, _ = reign.Call(ctx, a, Ping{})
		})
	}
	wg.Wait()
}
