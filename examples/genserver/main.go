// Command genserver is an Erlang gen_server ported to Go with reign: a
// bank account server on node 1, supervised by suture, called from node 2.
//
//	go run ./examples/genserver
//
// It starts two nodes in this process (mutual TLS over 127.0.0.1, with
// throwaway certificates), and prints a transcript of:
//
//   - handle_call: GetBalance and Withdraw through reign.Call; a refused
//     withdrawal is an error returned as a reply value, as {error, Reason};
//   - handle_cast: Deposit and Watch sent with Address.Send, no reply;
//   - handle_info: a MailboxClosed from a watched client (a monitor), in
//     the same receive loop;
//   - a timeout (receive ... after): when the account has been idle for
//     IdleTimeout, the server saves the balance to its journal;
//   - a crash: a Poison call panics the server; the caller's Call fails at
//     once with ErrMailboxClosed (the EXIT of the call in flight), suture
//     restarts the server, which re-registers "bank" and reloads the
//     journal; the client looks the name up again and carries on.
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
// server saves them (the After of its receive).
const IdleTimeout = 300 * time.Millisecond

// Calls: handle_call. Each is the Body of a reign.Request; the reply is a
// Balance.
type (
	GetBalance struct{}
	Withdraw   struct{ Amount int64 }
	Poison     struct{} // makes the server crash, to show supervision
)

// Casts: handle_cast. Sent with Address.Send; no reply.
type (
	Deposit struct{ Amount int64 }
	// Watch asks the server to monitor Client and say when it goes away.
	Watch struct{ Client reign.Address }
)

// Balance is the reply to every call: {ok, Amount} or {error, Err}.
// Errors travel as values: an error interface cannot cross the wire.
type Balance struct {
	Amount int64
	Err    string
}

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

// bank is the gen_server. It is a suture.Service: Serve is init, the
// receive loop and (deferred) terminate; its state lives in Serve's local
// variables, so a restart starts afresh from the journal.
type bank struct {
	node    *reign.Node
	journal *journal
	say     func(format string, args ...any)
}

func (b *bank) String() string { return "bank" }

func (b *bank) Serve(ctx context.Context) error {
	// init/1
	self, mb := b.node.NewMailbox()
	defer func() {
		// terminate/2. On a panic it runs too, while suture recovers the
		// panic: closing the mailbox fails the calls in flight at once and
		// releases the name.
		b.say("server: terminate: closing %v", self)
		mb.Close()
	}()
	balance := b.journal.load()
	if err := b.node.Register(serverName, self); err != nil {
		return err
	}
	b.say("server: init: registered %q as %v, balance %d from the journal", serverName, self, balance)
	dirty := false

	for {
		// receive ... after IdleTimeout -> save (only while there is
		// something to save; otherwise wait forever, like hibernate).
		wait, cancel := ctx, context.CancelFunc(func() {})
		if dirty {
			wait, cancel = context.WithTimeout(ctx, IdleTimeout)
		}
		msg, err := mb.Receive(wait)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			b.journal.save(balance)
			b.say("server: shutting down, balance %d saved", balance)
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			b.journal.save(balance)
			dirty = false
			b.say("server: timeout: idle for %v, balance %d saved to the journal", IdleTimeout, balance)
			continue
		default:
			return err
		}

		switch m := msg.(type) {
		case reign.Request: // handle_call
			switch body := m.Body.(type) {
			case GetBalance:
				b.say("server: handle_call GetBalance -> %d", balance)
				_ = m.Reply(Balance{Amount: balance})
			case Withdraw:
				if body.Amount > balance {
					b.say("server: handle_call Withdraw %d -> error: insufficient funds", body.Amount)
					_ = m.Reply(Balance{Amount: balance, Err: "insufficient funds"})
					break
				}
				balance -= body.Amount
				dirty = true
				b.say("server: handle_call Withdraw %d -> %d", body.Amount, balance)
				_ = m.Reply(Balance{Amount: balance})
			case Poison:
				b.say("server: handle_call Poison: crashing")
				panic("bank: poison message")
			default:
				_ = m.Reply(Balance{Amount: balance, Err: fmt.Sprintf("unknown call %T", body)})
			}
		case Deposit: // handle_cast
			balance += m.Amount
			dirty = true
			b.say("server: handle_cast Deposit %d -> %d", m.Amount, balance)
		case Watch: // handle_cast: erlang:monitor(process, Client)
			m.Client.OnCloseNotify(self)
			b.say("server: handle_cast Watch %v", m.Client)
		case reign.MailboxClosed: // handle_info: {'DOWN', Ref, process, Pid, Reason}
			b.say("server: handle_info: client %v went away (%v)", m.Address, m.Reason)
		case reign.MultipleClaim: // handle_info: another node claims "bank" too
			b.say("server: handle_info: %q is claimed elsewhere too", m.Name)
		default:
			b.say("server: handle_info: unexpected %T, ignored", m)
		}
	}
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
	// suture.Service too). A quick restart: FailureBackoff matters only
	// after FailureThreshold failures.
	sup := suture.New("bank-supervisor", suture.Spec{
		EventHook: func(e suture.Event) {
			switch e := e.(type) {
			case suture.EventServicePanic:
				say("supervisor: %s panicked (%s); restarting: %v", e.ServiceName, e.PanicMsg, e.Restarting)
			case suture.EventServiceTerminate:
				say("supervisor: %s terminated: %v; restarting: %v", e.ServiceName, e.Err, e.Restarting)
			default:
				say("supervisor: %v", e)
			}
		},
		FailureBackoff: 100 * time.Millisecond,
		Timeout:        2 * time.Second,
	})
	sup.Add(server)
	sup.Add(&bank{node: server, journal: &journal{}, say: say})
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
	call := func(srv reign.Address, body any) (Balance, error) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		v, err := reign.Call(cctx, srv, body)
		if err != nil {
			return Balance{}, err
		}
		b, ok := v.(Balance)
		if !ok {
			return Balance{}, fmt.Errorf("reply %T, want Balance", v)
		}
		return b, nil
	}
	mustCall := func(srv reign.Address, body any) (Balance, error) {
		b, err := call(srv, body)
		if err != nil {
			return b, fmt.Errorf("call %T: %w", body, err)
		}
		if b.Err != "" {
			say("client: call %s -> error: %s (balance %d)", show(body), b.Err, b.Amount)
		} else {
			say("client: call %s -> balance %d", show(body), b.Amount)
		}
		return b, nil
	}
	cast := func(srv reign.Address, msg any) error {
		say("client: cast %s", show(msg))
		return srv.Send(msg)
	}

	srv, err := lookup(reign.Address{})
	if err != nil {
		return err
	}
	say("client: node %d found %q at %v (on node %d)", client.ID(), serverName, srv, srv.NodeID())

	steps := []func() error{
		func() error { _, err := mustCall(srv, GetBalance{}); return err },
		func() error { return cast(srv, Deposit{Amount: 100}) },
		func() error { _, err := mustCall(srv, Withdraw{Amount: 30}); return err },
		func() error { _, err := mustCall(srv, Withdraw{Amount: 500}); return err },
		func() error {
			// A short-lived client session the server monitors.
			session, mb := client.NewMailbox()
			if err := cast(srv, Watch{Client: session}); err != nil {
				return err
			}
			// The reply proves the server has handled Watch (and so set
			// up its monitor) before the session closes.
			if _, err := mustCall(srv, GetBalance{}); err != nil {
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
		func() error { return cast(srv, Deposit{Amount: 5}) },
		func() error {
			_, err := call(srv, Poison{})
			if !errors.Is(err, reign.ErrMailboxClosed) {
				return fmt.Errorf("call Poison: got %v, want an error wrapping ErrMailboxClosed", err)
			}
			say("client: call Poison{} -> error: %v", err)
			say("client:   errors.Is(err, reign.ErrMailboxClosed) = true: the server died under the call (an EXIT)")
			return nil
		},
		func() error {
			old := srv
			var err error
			if srv, err = lookup(old); err != nil {
				return err
			}
			say("client: looked %q up again: %v (was %v)", serverName, srv, old)
			b, err := mustCall(srv, GetBalance{})
			if err != nil {
				return err
			}
			say("client: the restarted server reloaded %d from its journal; the unsaved deposit of 5 died with it", b.Amount)
			return nil
		},
		func() error { _, err := mustCall(srv, Withdraw{Amount: 20}); return err },
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
