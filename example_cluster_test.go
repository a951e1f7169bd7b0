package reign_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/reign-go/reign"
)

// Greeting is a message that crosses between nodes: every node that sends
// or receives it registers its type.
type Greeting struct {
	Text string
	From reign.Address // an Address inside a message stays usable
}

// Two nodes of a cluster in one process, talking mutual TLS over
// 127.0.0.1: node 1 registers a name, node 2 looks it up, sends a
// Greeting, and gets a reply at the Address inside it. The cluster spec
// and certificates are what reign_init wrote into testdata/example (see
// its README); a real program loads its own reign_cluster.json the same
// way, and runs one node per process.
func ExampleNode_Serve() {
	spec, err := reign.LoadClusterSpec(filepath.Join("testdata", "example", "reign_cluster.json"))
	if err != nil {
		fmt.Println(err)
		return
	}
	// A node listens on its address in the spec. Here, so that the example
	// runs anywhere, each listens on a free port and the spec says so.
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

	ctx, cancel := context.WithCancel(context.Background())
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

	// node 1: a greeter, known by name
	greeter, inbox := node1.NewMailbox()
	_ = node1.Register("greeter", greeter)
	go func() {
		for {
			msg, err := inbox.Receive(ctx)
			if err != nil {
				return
			}
			g := msg.(Greeting)
			_ = g.From.Send(Greeting{Text: "hello, node " + fmt.Sprint(g.From.NodeID())})
		}
	}()

	// node 2: find it (the registry reaches node 2 once they connect) and greet
	wait, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	addr, err := node2.WaitName(wait, "greeter")
	if err != nil {
		fmt.Println(err)
		return
	}
	me, myInbox := node2.NewMailbox()
	if err := addr.Send(Greeting{Text: "hi", From: me}); err != nil {
		fmt.Println(err)
		return
	}

	reply, err := myInbox.Receive(wait)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("greeter is on node", addr.NodeID())
	fmt.Println(reply.(Greeting).Text)
	// Output:
	// greeter is on node 1
	// hello, node 2
}
