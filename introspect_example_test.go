package reign_test

import (
	"errors"
	"fmt"

	"github.com/reign-go/reign"
)

// Snapshot lists what a node holds: here a mailbox registered as
// "orders" with two messages waiting, and another that watches it.
func ExampleNode_Snapshot() {
	node, _ := reign.NewNode(reign.Config{NodeID: 1})
	orders, ordersBox := node.NewMailbox()
	defer ordersBox.Close()
	watcher, watcherBox := node.NewMailbox()
	defer watcherBox.Close()
	_ = node.Register("orders", orders)
	orders.OnCloseNotify(watcher)
	_ = orders.Send("order 1")
	_ = orders.Send(42)

	s := node.Snapshot()
	fmt.Printf("node %d: %d mailboxes, %d messages queued, longest queue %d\n",
		s.Node, s.MailboxCount, s.Queued, s.MaxQueue)
	for _, mb := range s.Mailboxes {
		fmt.Printf("mailbox queued=%d watchers=%d names=%v\n", mb.Queued, mb.Watchers, mb.Names)
	}
	for _, name := range s.Names {
		fmt.Printf("name %q: %d claim(s), local queue %d\n", name.Name, len(name.Claims), name.Queued)
	}
	types, _ := node.Peek(orders, 10) // what is waiting, without taking it
	fmt.Println("queued types:", types)
	// Output:
	// node 1: 2 mailboxes, 2 messages queued, longest queue 2
	// mailbox queued=2 watchers=1 names=[orders]
	// mailbox queued=0 watchers=0 names=[]
	// name "orders": 1 claim(s), local queue 2
	// queued types: [string int]
}

// A tracer sees every message sent, delivered or dropped and every
// mailbox closed. This one prints them; a real one would count or sample.
func ExampleConfig_tracer() {
	node, _ := reign.NewNode(reign.Config{
		Tracer: func(e reign.TraceEvent) {
			switch e.Kind {
			case reign.TraceClose:
				fmt.Println("close", e.Reason)
			case reign.TraceDrop:
				fmt.Println("drop", e.Type, "mailbox closed:", errors.Is(e.Err, reign.ErrMailboxClosed))
			default:
				fmt.Println(e.Kind, e.Type)
			}
		},
	})
	a, box := node.NewMailbox()
	_ = a.Send("hello")
	box.Close()
	_ = a.Send(3.14)
	// Output:
	// send string
	// deliver string
	// close normal
	// drop float64 mailbox closed: true
}
