// Package chat is the chat room of reign_sample: every line typed into
// one chat node reaches every other chat node of the cluster. It is a
// package of its own, not part of main, so that examples/chatdemo runs the
// very same code with two nodes in one process.
//
// How it works, in reign's terms:
//
//   - each chat node registers its chat mailbox under the name "chat".
//     Every node claims the name at once, which is what LookupAll is for:
//     each node's claim is one entry, and the MultipleClaim messages the
//     registry sends about it are expected and ignored. It also registers
//     the mailbox under NodeName(its ID), a name only it claims, by which
//     the others find it;
//   - a typed line is sent to every Address of LookupAll("chat") but the
//     node's own, read afresh for each line, so late joiners get it;
//   - the chat mailbox watches node events (Node.MonitorNodes): for each
//     NodeUp, including those for nodes already up when the chat starts,
//     it waits for that node's chat name to arrive (Node.WaitName, on a
//     goroutine of its own that ends with the connection), announces
//     "node N joined", and watches the chat mailbox found with
//     OnCloseNotify, whose MailboxClosed announces "node N left
//     (reason)". A node that comes back, after a restart or a partition
//     that healed, brings a new NodeUp and is announced again. Nothing
//     polls.
package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/reign-go/reign"
)

// Name is the registry name every chat node claims for its chat mailbox.
const Name = "chat"

// NodeName is the registry name only the chat node on node id claims for
// its chat mailbox: how the others wait for it when node id comes up.
func NodeName(id reign.NodeID) string { return fmt.Sprintf("%s/%d", Name, id) }

// Line is one chat line, as sent from node to node. Both ends register it
// with RegisterType (Run does).
type Line struct {
	From reign.NodeID
	Text string
}

// Run joins node to the chat: it serves node (Node.Serve) and registers its
// chat mailbox, sends every line read from in to the other chat nodes, and
// writes to out what happens: "[node N] text" for a line from node N,
// "node N joined" and "node N left (reason)" as nodes come and go.
//
// It returns nil when in reaches end of file or ctx is done, after
// closing its chat mailbox (the other nodes print "node N left") and
// stopping node's Serve. It returns an error if node cannot serve (its
// listen address is in use, say) or reading in fails.
//
// If ctx ends first, the goroutine reading in may still be blocked in
// in.Read when Run returns; it ends when in is closed or at end of file,
// and then does nothing more. (A terminal's standard input cannot be
// interrupted portably; a program exits right after Run.)
//
// out is written from one goroutine at a time. Run must be called once
// per node.
func Run(ctx context.Context, node *reign.Node, in io.Reader, out io.Writer) error {
	if err := node.RegisterType(Line{}); err != nil {
		return err
	}
	loopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)

	// The node's networking, stopped last, so our departure (the chat
	// mailbox closing, then the node's goodbye) reaches the others.
	serveCtx, stopServe := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		err := node.Serve(serveCtx)
		if serveCtx.Err() == nil {
			stop(fmt.Errorf("node %d stopped serving: %w", node.ID(), err))
		}
		served <- err
	}()
	defer func() {
		stopServe()
		<-served
	}()

	self, mb := node.NewMailbox()
	defer mb.Close()
	for _, name := range []string{Name, NodeName(node.ID())} {
		if err := node.Register(name, self); err != nil {
			return err
		}
	}
	if err := node.MonitorNodes(self); err != nil {
		return err
	}

	var mu sync.Mutex // out
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}

	errInputDone := errors.New("end of input")
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			if loopCtx.Err() != nil {
				return
			}
			text := strings.TrimRight(sc.Text(), "\r")
			if strings.TrimSpace(text) == "" {
				continue
			}
			// the chat mailbox sends it, to the nodes it announced as
			// joined: so whoever was said to have joined gets the line
			_ = self.Send(outgoing{text: text})
		}
		if err := sc.Err(); err != nil {
			stop(fmt.Errorf("reading input: %w", err))
			return
		}
		stop(errInputDone)
	}()

	// For each node up, a finder waits for its chat name and sends what it
	// found to the chat mailbox. A finder is cancelled when its node goes
	// down, and they all end before Run returns.
	var finders sync.WaitGroup
	defer finders.Wait()
	type finder struct {
		gen    uint64 // which NodeUp of the node it serves
		cancel context.CancelFunc
	}
	finding := map[reign.NodeID]finder{}
	defer func() {
		for _, f := range finding {
			f.cancel()
		}
	}()
	var gen uint64
	members := map[reign.Address]bool{} // chat mailboxes announced as joined, not yet as left

	for {
		v, err := mb.Receive(loopCtx)
		if err != nil {
			if loopCtx.Err() != nil {
				break
			}
			return err // the mailbox closed under us: cannot happen
		}
		switch m := v.(type) {
		case Line:
			say("[node %d] %s", m.From, m.Text)
		case outgoing:
			sent := 0
			for a := range members {
				if err := a.Send(Line{From: node.ID(), Text: m.text}); err == nil {
					sent++
				}
			}
			if sent == 0 {
				say("(no other chat node is here yet: nobody got that)")
			}
		case reign.NodeUp:
			gen++
			g := gen
			ctx, cancel := context.WithCancel(loopCtx)
			finding[m.Node] = finder{gen: g, cancel: cancel}
			finders.Go(func() {
				if a, err := node.WaitName(ctx, NodeName(m.Node)); err == nil {
					_ = self.Send(found{node: m.Node, gen: g, addr: a})
				}
			})
		case reign.NodeDown:
			// Its chat mailbox, if announced, is announced as left by
			// the MailboxClosed that came before this NodeDown.
			if f, ok := finding[m.Node]; ok {
				f.cancel()
				delete(finding, m.Node)
			}
		case found:
			f, ok := finding[m.node]
			if !ok || f.gen != m.gen {
				continue // from a connection that has ended since
			}
			f.cancel()
			delete(finding, m.node)
			members[m.addr] = true
			say("node %d joined", m.node)
			m.addr.OnCloseNotify(self)
		case reign.MailboxClosed:
			if members[m.Address] {
				delete(members, m.Address)
				say("node %d left (%v)", m.Address.NodeID(), m.Reason)
			}
		case reign.MultipleClaim:
			// Expected: every chat node claims "chat".
		}
	}
	if err := context.Cause(loopCtx); err != errInputDone && ctx.Err() == nil {
		return err
	}
	return nil
}

// outgoing is a line typed here, which the input reader hands to the chat
// mailbox to send. It never leaves the node.
type outgoing struct{ text string }

// found is what a finder sends the chat mailbox: the chat mailbox of a node
// that came up. It never leaves the node, so it needs no registration.
type found struct {
	node reign.NodeID
	gen  uint64
	addr reign.Address
}
