package reign_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/reign-go/reign"
)

// Process groups (Erlang's pg) on one node: mailboxes join a named group,
// Broadcast sends to every member, a monitor hears of each change, and a
// mailbox that closes leaves its groups.
func ExampleNode_JoinGroup() {
	node, _ := reign.NewNode(reign.Config{})
	watcher, events := node.NewMailbox()
	defer events.Close()
	members, _ := node.MonitorGroup("workers", watcher)
	fmt.Println("members at first:", len(members))

	a, inboxA := node.NewMailbox()
	defer inboxA.Close()
	b, inboxB := node.NewMailbox()
	_ = node.JoinGroup("workers", a)
	_ = node.JoinGroup("workers", b)
	fmt.Println("members:", len(node.Members("workers")))

	sent, _ := node.Broadcast("workers", "reload")
	fmt.Println("broadcast to", sent)
	msg, _ := inboxA.ReceiveAsync()
	fmt.Println("a got", msg)

	inboxB.Close() // b leaves every group it was in
	fmt.Println("members:", len(node.Members("workers")))

	for events.Len() > 0 {
		ev, _ := events.ReceiveAsync()
		gc := ev.(reign.GroupChanged)
		switch {
		case len(gc.Joined) == 1 && gc.Joined[0] == a:
			fmt.Println("event: a joined", gc.Group)
		case len(gc.Joined) == 1 && gc.Joined[0] == b:
			fmt.Println("event: b joined", gc.Group)
		case len(gc.Left) == 1 && gc.Left[0] == b:
			fmt.Println("event: b left", gc.Group)
		}
	}
	// Output:
	// members at first: 0
	// members: 2
	// broadcast to 2
	// a got reload
	// members: 1
	// event: a joined workers
	// event: b joined workers
	// event: b left workers
}

// A group across two nodes: a worker on node 2 joins, node 1 hears of it
// through its monitor and broadcasts to the group. (Spec and certificates
// as in the Node.Serve example.)
func ExampleNode_Broadcast() {
	spec, err := reign.LoadClusterSpec(filepath.Join("testdata", "example", "reign_cluster.json"))
	if err != nil {
		fmt.Println(err)
		return
	}
	listeners := map[reign.NodeID]net.Listener{}
	for i, n := range spec.Nodes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println(err)
			return
		}
		listeners[n.ID] = ln
		spec.Nodes[i].Address = ln.Addr().String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	done := make(chan struct{}, 2)
	defer func() { cancel(); <-done; <-done }()
	start := func(id reign.NodeID) *reign.Node {
		node, err := reign.NewNode(reign.Config{NodeID: id, Cluster: spec, Listener: listeners[id]})
		if err != nil {
			panic(err)
		}
		_ = node.RegisterType(Greeting{})
		go func() { _ = node.Serve(ctx); done <- struct{}{} }()
		return node
	}
	node1, node2 := start(1), start(2)

	// node 1 watches the group
	watcher, events := node1.NewMailbox()
	defer events.Close()
	_, _ = node1.MonitorGroup("workers", watcher)

	// node 2: a worker joins
	worker, inbox := node2.NewMailbox()
	defer inbox.Close()
	_ = node2.JoinGroup("workers", worker)

	// node 1 learns of it (at once if connected, else when they connect)
	ev, err := events.Receive(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("joined on node", ev.(reign.GroupChanged).Joined[0].NodeID())
	sent, err := node1.Broadcast("workers", Greeting{Text: "work!"})
	fmt.Println("broadcast to", sent, err)

	msg, err := inbox.Receive(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("worker got", msg.(Greeting).Text)
	// Output:
	// joined on node 2
	// broadcast to 1 <nil>
	// worker got work!
}
