package reign_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/reign-go/reign"
)

// A mailbox is a queue with an Address; anyone holding the Address can send
// to it, and the owner receives.
func ExampleMailbox_Receive() {
	node, _ := reign.NewNode(reign.Config{}) // a local-only node
	addr, mailbox := node.NewMailbox()
	defer mailbox.Close()

	_ = addr.Send("hello")
	_ = addr.Send("world")

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for range 2 {
		msg, err := mailbox.Receive(ctx)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println(msg)
	}
	// Output:
	// hello
	// world
}

type job struct{ ID int }
type urgent struct{ Note string }

// ReceiveMatch is Erlang's selective receive: it takes the first message
// the function accepts and leaves the others queued, in order.
func ExampleMailbox_ReceiveMatch() {
	node, _ := reign.NewNode(reign.Config{})
	addr, mailbox := node.NewMailbox()
	defer mailbox.Close()

	_ = addr.Send(job{1})
	_ = addr.Send(job{2})
	_ = addr.Send(urgent{"stop the line"})
	_ = addr.Send(job{3})

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	msg, _ := mailbox.ReceiveMatch(ctx, func(m any) bool {
		_, ok := m.(urgent)
		return ok
	})
	fmt.Println("first:", msg)
	for mailbox.Len() > 0 {
		msg, _ := mailbox.Receive(ctx)
		fmt.Println("then:", msg)
	}
	// Output:
	// first: {stop the line}
	// then: {1}
	// then: {2}
	// then: {3}
}

// OnCloseNotify links a watcher to a mailbox, like an Erlang monitor: the
// watcher gets a MailboxClosed when the watched mailbox closes.
func ExampleAddress_OnCloseNotify() {
	node, _ := reign.NewNode(reign.Config{})
	worker, workerBox := node.NewMailbox()
	watcher, watcherBox := node.NewMailbox()
	defer watcherBox.Close()

	worker.OnCloseNotify(watcher)
	workerBox.Close() // the worker stops

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	msg, _ := watcherBox.Receive(ctx)
	if mc, ok := msg.(reign.MailboxClosed); ok {
		fmt.Println("worker closed:", mc.Address == worker, "reason:", mc.Reason)
	}
	// Output:
	// worker closed: true reason: normal
}

// A gen_server-style counter: the server owns its state and handles one
// request at a time; clients use Call.
func ExampleCall() {
	node, _ := reign.NewNode(reign.Config{})
	server, serverBox := node.NewMailbox()

	done := make(chan struct{})
	go func() { // the server's loop
		defer close(done)
		count := 0
		for {
			msg, err := serverBox.Receive(context.Background())
			if err != nil {
				return // mailbox closed: stop
			}
			req := msg.(reign.Request)
			switch req.Body {
			case "incr":
				count++
				_ = req.Reply(count)
			case "get":
				_ = req.Reply(count)
			default:
				_ = req.Reply(fmt.Errorf("unknown request %v", req.Body))
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for range 3 {
		n, _ := reign.Call(ctx, server, "incr")
		fmt.Println("incr ->", n)
	}
	n, _ := reign.Call(ctx, server, "get")
	fmt.Println("get ->", n)
	_, err := reign.Call(ctx, server, "what") // an error reply is Call's error
	fmt.Println("what ->", err)

	serverBox.Close()
	<-done
	_, err = reign.Call(ctx, server, "get")
	fmt.Println("after close:", errors.Is(err, reign.ErrMailboxClosed))
	// Output:
	// incr -> 1
	// incr -> 2
	// incr -> 3
	// get -> 3
	// what -> unknown request what
	// after close: true
}

// The registry gives a mailbox a name, so other code (on this node or,
// in a cluster, on any node) can find its Address.
func ExampleNode_Register() {
	node, _ := reign.NewNode(reign.Config{})
	addr, mailbox := node.NewMailbox()

	if err := node.Register("logger", addr); err != nil {
		fmt.Println("error:", err)
		return
	}
	if logger, ok := node.Lookup("logger"); ok {
		_ = logger.Send("found you")
	}
	msg, _ := mailbox.ReceiveAsync()
	fmt.Println(msg)

	mailbox.Close() // closing a mailbox releases its names
	_, ok := node.Lookup("logger")
	fmt.Println("still registered:", ok)
	// Output:
	// found you
	// still registered: false
}
