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
//     registry sends about it are expected and ignored;
//   - a typed line is sent to every Address of LookupAll("chat") but the
//     node's own, read afresh for each line, so late joiners get it;
//   - the receive loop polls LookupAll every PollInterval (a receive with
//     a timeout, Erlang's receive ... after); a chat Address it has not
//     seen before is announced as "node N joined", and watched with
//     OnCloseNotify, whose MailboxClosed announces "node N left (reason)".
package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/reign-go/reign"
)

// Name is the registry name every chat node claims for its chat mailbox.
const Name = "chat"

// PollInterval is how often a chat node looks for new chat nodes.
const PollInterval = 200 * time.Millisecond

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
	if err := node.Register(Name, self); err != nil {
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
			sent := 0
			for _, a := range node.LookupAll(Name) {
				if a == self {
					continue
				}
				if err := a.Send(Line{From: node.ID(), Text: text}); err == nil {
					sent++
				}
			}
			if sent == 0 {
				say("(no other chat node is here yet: nobody got that)")
			}
		}
		if err := sc.Err(); err != nil {
			stop(fmt.Errorf("reading input: %w", err))
			return
		}
		stop(errInputDone)
	}()

	known := map[reign.Address]bool{} // chat mailboxes announced as joined
	gone := map[reign.Address]bool{}  // and since announced as left
	look := func() {
		for _, a := range node.LookupAll(Name) {
			if a == self || known[a] || gone[a] {
				continue
			}
			known[a] = true
			say("node %d joined", a.NodeID())
			a.OnCloseNotify(self)
		}
	}
	for {
		look()
		wait, cancel := context.WithTimeout(loopCtx, PollInterval)
		v, err := mb.Receive(wait)
		cancel()
		if err != nil {
			if loopCtx.Err() != nil {
				break
			}
			if errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return err // the mailbox closed under us: cannot happen
		}
		switch m := v.(type) {
		case Line:
			say("[node %d] %s", m.From, m.Text)
		case reign.MailboxClosed:
			if known[m.Address] {
				delete(known, m.Address)
				gone[m.Address] = true
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
