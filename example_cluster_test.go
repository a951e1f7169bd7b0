package reign_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/internal/certs"
)

// Greeting is a message that crosses between nodes: every node that sends
// or receives it registers its type.
type Greeting struct {
	Text string
	From reign.Address // an Address inside a message stays usable
}

// Two nodes of a cluster in one process, talking mutual TLS over
// 127.0.0.1: node 1 registers a name, node 2 looks it up, sends a
// Greeting, and gets a reply at the Address inside it. (reign_init mints
// the certificates and spec for a real cluster; here they are made in a
// temporary folder.)
func ExampleNode_Serve() {
	dir, _ := os.MkdirTemp("", "reign-example-")
	defer os.RemoveAll(dir)
	if _, err := certs.WriteSet(dir, 2, certs.SetOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	ln1, _ := net.Listen("tcp", "127.0.0.1:0")
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	spec := &reign.ClusterSpec{
		Nodes: []reign.NodeSpec{
			{ID: 1, Address: ln1.Addr().String()},
			{ID: 2, Address: ln2.Addr().String()},
		},
		ClusterCertPath: filepath.Join(dir, "reign_ca.crt"),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	defer func() { cancel(); <-done; <-done }()
	start := func(id reign.NodeID, ln net.Listener) *reign.Node {
		node, err := reign.NewNode(reign.Config{NodeID: id, Cluster: spec, Listener: ln})
		if err != nil {
			panic(err)
		}
		_ = node.RegisterType(Greeting{})
		go func() { _ = node.Serve(ctx); done <- struct{}{} }()
		return node
	}
	node1, node2 := start(1, ln1), start(2, ln2)

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
	var addr reign.Address
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var ok bool
		if addr, ok = node2.Lookup("greeter"); ok {
			break
		}
	}
	me, myInbox := node2.NewMailbox()
	_ = addr.Send(Greeting{Text: "hi", From: me})

	wait, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
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
