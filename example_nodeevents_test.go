package reign_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/reign-go/reign"
)

// MonitorNodes is Erlang's net_kernel:monitor_nodes: a mailbox hears of
// each node coming up and going down, with the reason. Here node 1 watches
// while node 2 starts, then shuts down cleanly. (The spec and certificates
// are those of ExampleNode_Serve.)
func ExampleNode_MonitorNodes() {
	spec, err := reign.LoadClusterSpec(filepath.Join("testdata", "example", "reign_cluster.json"))
	if err != nil {
		fmt.Println(err)
		return
	}
	listeners := map[reign.NodeID]net.Listener{}
	for i, n := range spec.Nodes { // free ports, so that the example runs anywhere
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println(err)
			return
		}
		listeners[n.ID] = ln
		spec.Nodes[i].Address = ln.Addr().String()
	}
	serve := func(id reign.NodeID) (*reign.Node, func()) {
		node, err := reign.NewNode(reign.Config{NodeID: id, Cluster: spec, Listener: listeners[id]})
		if err != nil {
			panic(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = node.Serve(ctx); close(done) }()
		return node, func() { cancel(); <-done }
	}

	node1, stop1 := serve(1)
	defer stop1()
	watcher, events := node1.NewMailbox()
	defer events.Close()
	_ = node1.MonitorNodes(watcher) // nothing is up yet: no NodeUp now
	fmt.Println("peers:", node1.Peers())

	node2, stop2 := serve(2)
	watcher2, events2 := node2.NewMailbox()
	defer events2.Close()
	_ = node2.MonitorNodes(watcher2) // a NodeUp at once if node 1 is up already
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, _ := events.Receive(ctx)
	up := ev.(reign.NodeUp)
	fmt.Println("node", up.Node, "up")
	fmt.Println("peers:", node1.Peers())
	ev, _ = events2.Receive(ctx) // node 2 has it up too
	fmt.Println("node 2 sees node", ev.(reign.NodeUp).Node, "up")

	stop2() // node 2 shuts down cleanly: it says goodbye
	ev, _ = events.Receive(ctx)
	down := ev.(reign.NodeDown)
	fmt.Println("node", down.Node, "down:", down.Reason)
	fmt.Println("peers:", node1.Peers())
	// Output:
	// peers: []
	// node 2 up
	// peers: [2]
	// node 2 sees node 1 up
	// node 2 down: goodbye
	// peers: []
}

// WaitName waits for a name instead of polling Lookup: here a client waits
// for a server that registers a moment later, on a goroutine of its own
// (on another node it is the same: the claim arrives over the network).
// A wait that its context ends consumes nothing and leaves nothing behind.
func ExampleNode_WaitName() {
	node, _ := reign.NewNode(reign.Config{})
	server, inbox := node.NewMailbox()
	defer inbox.Close()
	go func() {
		// ... the server starts up, then registers
		_ = node.Register("db", server)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := node.WaitName(ctx, "db")
	fmt.Println(addr == server, err)

	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	_, err = node.WaitName(short, "nobody")
	fmt.Println(err)
	// Output:
	// true <nil>
	// context deadline exceeded
}
