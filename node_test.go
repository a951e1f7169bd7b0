package reign

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestNewNodeRefusesBadConfig: each bad field gives a *ConfigError that
// names it and wraps ErrBadConfig; NewNode starts nothing.
func TestNewNodeRefusesBadConfig(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	spec.Nodes = []NodeSpec{{ID: 1, Address: "127.0.0.1:1"}, {ID: 2, Address: "127.0.0.1:2"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{HeartbeatInterval: -time.Second}, "Config.HeartbeatInterval"},
		{Config{HeartbeatInterval: 2 * time.Second, HeartbeatTimeout: time.Second}, "Config.HeartbeatTimeout"},
		{Config{HandshakeTimeout: -1}, "Config.HandshakeTimeout"},
		{Config{SendBufferLimit: -1}, "Config.SendBufferLimit"},
		{Config{MaxFrameSize: 100}, "Config.MaxFrameSize"},
		{Config{MaxFrameSize: 2 << 30}, "Config.MaxFrameSize"},
		{Config{Listener: ln}, "Config.Listener"},
		{Config{NodeID: 9, Cluster: spec}, "Config.NodeID"},
	} {
		n, err := NewNode(c.cfg)
		var ce *ConfigError
		if n != nil || !errors.As(err, &ce) || ce.Field != c.field || !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: got %v, %v; want a *ConfigError for %s", c.cfg, n, err, c.field)
			continue
		}
		if !strings.HasPrefix(err.Error(), "reign: ") || !strings.Contains(err.Error(), c.field) {
			t.Errorf("error text %q", err)
		}
	}
	// and the zero Config is a working local-only node
	n, err := NewNode(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if n.ID() != 0 || n.String() != "node 0" || !reflect.DeepEqual(n.Stats(), Stats{}) {
		t.Fatalf("zero config node: %v %v %+v", n.ID(), n, n.Stats())
	}
}

// TestServeLocalOnlyAndTwice: a local-only node's Serve just waits for its
// context; a clustered node refuses a second concurrent Serve, and serves
// again after the first returned.
func TestServeLocalOnlyAndTwice(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := n.Serve(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("local Serve returned %v", err)
	}

	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1 := tc.node(1)
	if err := n1.Serve(context.Background()); !errors.Is(err, ErrAlreadyServing) {
		t.Fatalf("a second concurrent Serve returned %v", err)
	}
	// node 2 stops and is served again on its spec address: node 1 reconnects
	tc.kill(2)
	n2 := tc.node(2)
	ns, _ := tc.spec.Node(2)
	var ln net.Listener
	checkFor(t, 5*time.Second, func() error {
		var err error
		ln, err = net.Listen("tcp", ns.Address)
		return err
	})
	_ = ln.Close() // free the port for Serve's own listener
	n2.cfg.Listener = nil
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n2.Serve(ctx2) }()
	defer func() { cancel2(); <-done }()
	checkFor(t, 10*time.Second, func() error {
		return unless(n1.Stats().PeersUp == 1 && n2.Stats().PeersUp == 1, "n1.Stats().PeersUp == 1 && n2.Stats().PeersUp == 1")
	})
}
