package reign_test

import (
	"context"
	"log"

	"github.com/reign-go/reign"
)

// A node that joins a running cluster: its spec (from reign_init
// -add-node 5) needs only its own entry; it joins through any member's
// address, and the members learn its ID from its certificate. When ctx
// ends, Serve gossips its leave before closing its connections. Every
// node of the cluster runs with Membership set.
func ExampleMembershipConfig() {
	spec, err := reign.LoadClusterSpec("reign_cluster.json")
	if err != nil {
		log.Fatal(err)
	}
	node, err := reign.NewNode(reign.Config{
		NodeID:  5,
		Cluster: spec,
		Membership: &reign.MembershipConfig{
			Join: []string{"db1.example.com:29871"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go node.Serve(ctx)
	// node.Stats().Members counts the members alive, this node included.
}
