// Command genserver is an Erlang gen_server ported to Go with reign's gen
// package: a bank account server on node 1, supervised by suture, called
// from node 2.
//
//	go run ./examples/genserver
//
// It starts two nodes in this process (mutual TLS over 127.0.0.1, with
// throwaway certificates), and prints a transcript of:
//
//   - handle_call: GetBalance and Withdraw through gen.Call; a refused
//     withdrawal is an error reply ({reply, {error, Reason}, S}), which
//     the caller's Call returns as its error;
//   - handle_cast: Deposit and Watch sent with gen.Cast, no reply;
//   - handle_info: a MailboxClosed from a watched client (a monitor);
//   - a timeout ({noreply, S, Timeout}): when the account has been idle for
//     IdleTimeout with unsaved changes, the server saves the balance to its
//     journal;
//   - a crash: a Poison call panics the server; the caller's Call fails at
//     once with ErrMailboxClosed (the EXIT of the call in flight), suture
//     restarts the server, which re-registers "bank" and reloads the
//     journal; the client calls the name again and carries on.
//
// docs/porting-gen_server.md explains the correspondence.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/gen"
	"github.com/reign-go/reign/internal/certs"
	"github.com/thejerf/suture/v4"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "genserver: %v\n", err)
		os.Exit(1)
	}
}

// The server's registered name: {local, bank} in Erlang.
const serverName = "bank"

// IdleTimeout is how long the account may have unsaved changes before the
// server saves them.
const IdleTimeout = 300 * time.Millisecond

// Calls: handle_call. The reply is a Balance, or an error.
type (
	GetBalance struct{}
	Withdraw   struct{ Amount int64 }
	Poison     struct{} // makes the server crash, to show supervision
)

// Casts: handle_cast.
type (
	Deposit struct{ Amount int64 }
	// Watch asks the server to monitor Client and say when it goes away.
	Watch struct{ Client reign.Address }
)

// Balance is the reply to every successful call.
type Balance struct{ Amount int64 }

// messageTypes are registered on both nodes: every type that crosses.
var messageTypes = []any{GetBalance{}, Withdraw{}, Poison{}, Deposit{}, Watch{}, Balance{}}

// journal is the server's stable storage: what survives a crash.
type journal struct {
	mu      sync.Mutex
	balance int64
}

func (j *journal) load() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.balance
}

func (j *journal) save(b int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.balance = b
}

// bank is the gen_server: its state is balance and dirty, rebuilt by Init
// from the journal at every (re)start.
type bank struct {
	journal *journal
	say     func(format string, args ...any)
	balance int64
	dirty   bool // changes since the last save
}

func (b *bank) Init(p *gen.Process) error {
	b.balance, b.dirty = b.journal.load(), false
	b.say("server: init: registered %q as %v, balance %d from the journal", serverName, p.Self(), b.balance)
	return nil
}

func (b *bank) HandleCall(p *gen.Process, req any) (any, error) {
	defer b.idle(p)
	switch r := req.(type) {
	case GetBalance:
		b.say("server: handle_call GetBalance -> %d", b.balance)
		return Balance{b.balance}, nil
	case Withdraw:
		if r.Amount > b.balance {
			b.say("server: handle_call Withdraw %d -> error: insufficient funds", r.Amount)
			return nil, fmt.Errorf("insufficient funds: balance %d", b.balance)
		}
		b.balance -= r.Amount
		b.dirty = true
		b.say("server: handle_call Withdraw %d -> %d", r.Amount, b.balance)
		return Balance{b.balance}, nil
	case Poison:
		b.say("server: handle_call Poison: crashing")
		panic("bank: poison message")
	}
	return nil, gen.ErrUnhandled
}

func (b *bank) HandleCast(p *gen.Process, msg any) error {
	defer b.idle(p)
	switch m := msg.(type) {
	case Deposit:
		b.balance += m.Amount
		b.dirty = true
		b.say("server: handle_cast Deposit %d -> %d", m.Amount, b.balance)
	case Watch: // erlang:monitor(process, Client)
		m.Client.OnCloseNotify(p.Self())
		b.say("server: handle_cast Watch %v", m.Client)
	default:
		return gen.ErrUnhandled
	}
	return nil
}

func (b *bank) HandleInfo(p *gen.Process, msg any) error {
	defer b.idle(p)
	switch m := msg.(type) {
	case gen.Timeout:
		b.journal.save(b.balance)
		b.dirty = false
		b.say("server: timeout: idle for %v, balance %d saved to the journal", IdleTimeout, b.balance)
	case reign.MailboxClosed: // {'DOWN', Ref, process, Pid, Reason}
		b.say("server: handle_info: client %v went away (%v)", m.Address, m.Reason)
	case reign.MultipleClaim:
		b.say("server: handle_info: %q is claimed elsewhere too", m.Name)
	}
	return nil
}

// idle sets the idle timeout while there is something to save; otherwise
// the server waits for its next message without one (as hibernate).
func (b *bank) idle(p *gen.Process) {
	if b.dirty {
		p.SetTimeout(IdleTimeout)
	}
}

func (b *bank) Terminate(p *gen.Process, reason error) {
	if errors.Is(reason, context.Canceled) {
		b.journal.save(b.balance)
		b.say("server: shutting down, balance %d saved", b.balance)
		return
	}
	b.say("server: terminate: %v", reason)
}

// run is the program; it writes the transcript to out.
func run(ctx context.Context, out io.Writer) (err error) {
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}

	nodes, cleanup, err := startCluster()
	if err != nil {
		return err
	}
	defer cleanup()
	server, client := nodes[0], nodes[1]

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	// Node 1: the node and the bank under one supervisor (a *Node is a
	// suture.Service too).
	sup := suture.New("bank-supervisor", suture.Spec{
		EventHook: func(e suture.Event) {
			if e, ok := e.(suture.EventServiceTerminate); ok {
				say("supervisor: %s terminated (%v); restarting: %v", e.ServiceName, e.Err, e.Restarting)
			}
		},
		FailureBackoff: 100 * time.Millisecond,
		Timeout:        2 * time.Second,
	})
	sup.Add(server)
	sup.Add(gen.New(server, serverName, &bank{journal: &journal{}, say: say}))
	wg.Add(2)
	go func() { defer wg.Done(); _ = sup.Serve(ctx) }()
	// Node 2: just the node.
	go func() { defer wg.Done(); _ = client.Serve(ctx) }()

	// The client, on node 2.
	lookup := func(not reign.Address) (reign.Address, error) {
		for {
			if a, ok := client.Lookup(serverName); ok && a != not {
				return a, nil
			}
			select {
			case <-ctx.Done():
				return reign.Address{}, fmt.Errorf("looking up %q: %w", serverName, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	call := func(body any) (Balance, error) {
		b, err := gen.Call[Balance](ctx, client, serverName, body)
		if err != nil && !errors.As(err, new(*reign.RemoteError)) {
			return b, fmt.Errorf("call %T: %w", body, err)
		}
		if err != nil {
			say("client: call %s -> error: %v", show(body), err)
		} else {
			say("client: call %s -> balance %d", show(body), b.Amount)
		}
		return b, nil
	}
	cast := func(msg any) error {
		say("client: cast %s", show(msg))
		return gen.Cast(client, serverName, msg)
	}

	srv, err := lookup(reign.Address{})
	if err != nil {
		return err
	}
	say("client: node %d found %q at %v (on node %d)", client.ID(), serverName, srv, srv.NodeID())

	steps := []func() error{
		func() error { _, err := call(GetBalance{}); return err },
		func() error { return cast(Deposit{Amount: 100}) },
		func() error { _, err := call(Withdraw{Amount: 30}); return err },
		func() error { _, err := call(Withdraw{Amount: 500}); return err },
		func() error {
			// A short-lived client session the server monitors.
			session, mb := client.NewMailbox()
			if err := cast(Watch{Client: session}); err != nil {
				return err
			}
			// The reply proves the server has handled Watch (and so set
			// up its monitor) before the session closes.
			if _, err := call(GetBalance{}); err != nil {
				return err
			}
			say("client: closing session %v", session)
			mb.Close()
			return nil
		},
		func() error {
			say("client: idle for %v", 2*IdleTimeout)
			select {
			case <-time.After(2 * IdleTimeout):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		func() error { return cast(Deposit{Amount: 5}) },
		func() error {
			_, err := gen.Call[Balance](ctx, client, serverName, Poison{})
			if !errors.Is(err, reign.ErrMailboxClosed) {
				return fmt.Errorf("call Poison: got %v, want an error wrapping ErrMailboxClosed", err)
			}
			say("client: call Poison{} -> error: %v", err)
			say("client:   errors.Is(err, reign.ErrMailboxClosed) = true: the server died under the call (an EXIT)")
			return nil
		},
		func() error {
			// gen.Call looks the name up at each call; wait until the
			// restarted server's claim has reached this node
			old := srv
			var err error
			if srv, err = lookup(old); err != nil {
				return err
			}
			say("client: %q is now %v (was %v)", serverName, srv, old)
			b, err := call(GetBalance{})
			if err != nil {
				return err
			}
			say("client: the restarted server reloaded %d from its journal; the unsaved deposit of 5 died with it", b.Amount)
			return nil
		},
		func() error { _, err := call(Withdraw{Amount: 20}); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	say("client: done; shutting down")
	return nil
}

// show formats a message as Go syntax without the package name, as in
// Withdraw{Amount:30}.
func show(msg any) string {
	return strings.TrimPrefix(fmt.Sprintf("%T%+v", msg, msg), "main.")
}

// startCluster makes nodes 1 and 2 of a throwaway cluster on 127.0.0.1,
// with the message types registered on both. cleanup removes the
// certificates; the nodes stop when their Serve's context ends.
func startCluster() (nodes []*reign.Node, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "reign-genserver-")
	if err != nil {
		return nil, nil, err
	}
	var lns []net.Listener
	cleanup = func() {
		for _, ln := range lns {
			ln.Close() // for early errors; a serving node closes its own
		}
		os.RemoveAll(dir)
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	if _, err := certs.WriteSet(dir, 2, certs.SetOptions{}); err != nil {
		return nil, nil, err
	}
	spec := &reign.ClusterSpec{
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		ClusterCertPath: filepath.Join(dir, certs.CACertFile),
	}
	for id := reign.NodeID(1); id <= 2; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		lns = append(lns, ln)
		spec.Nodes = append(spec.Nodes, reign.NodeSpec{ID: id, Address: ln.Addr().String()})
	}
	for i, ns := range spec.Nodes {
		n, err := reign.NewNode(reign.Config{NodeID: ns.ID, Cluster: spec, Listener: lns[i]})
		if err != nil {
			return nil, nil, err
		}
		for _, t := range messageTypes {
			if err := n.RegisterType(t); err != nil {
				return nil, nil, err
			}
		}
		nodes = append(nodes, n)
	}
	return nodes, cleanup, nil
}
