package reign

import (
	"sync"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/wire"
)

// Bug: the listener could hand an accepted connection to a peer whose
// service had already stopped (the node stopping right after the peer's
// NodeUp): nobody closed it, and the other node took the connection for up
// until its heartbeat timeout. Here node 2 holds node 1's connection
// before offering it until its peer service has stopped: node 1 must see
// the connection end long before its heartbeat timeout.
func TestOfferAfterPeerStopped(t *testing.T) {
	t.Parallel()
	tc, lns := newBareCluster(t, 2, func(cfg *Config) { cfg.HeartbeatTimeout = time.Minute })
	n2 := tc.make(2, lns[2])
	held := make(chan struct{})
	var once sync.Once
	n2.cl.testHookOffer = func(p *peer) {
		once.Do(func() {
			close(held)
			select {
			case <-p.exited:
			case <-time.After(testTimeout):
			}
		})
	}
	tc.serve(2, n2, nil)
	n1 := tc.start(1, lns[1])
	<-held
	checkFor(t, testTimeout, func() error {
		return unless(n1.Stats().Peers[2].Up, "node 1 has not connected to node 2")
	})
	stopped := make(chan struct{})
	go func() { defer close(stopped); tc.kill(2) }()
	checkFor(t, 3*time.Second, func() error {
		return unless(!n1.Stats().Peers[2].Up, "node 1 still has its connection to the stopped node 2")
	})
	<-stopped
}

// An idle connection gives back what a burst grew: after large messages
// both ends' read buffers and the sender's send buffers return to their
// small sizes once the connection is quiet (the target: at most
// 64 KiB of heap per idle connection).
func TestIdleConnectionShrinks(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	a2, mb2 := newTestMailbox(t, n2)
	to2 := n1.BindAddress(a2)
	text := string(make([]byte, 30<<10))
	for seq := range 200 {
		mustSend(t, to2, testMsg{Seq: seq, Text: text})
	}
	for range 200 {
		recv(t, mb2)
	}
	footprint := func(n *Node, id NodeID) (read, send int) {
		cn := n.cl.peer(id).live.Load()
		if cn == nil {
			return 0, 0
		}
		cn.mu.Lock()
		defer cn.mu.Unlock()
		return cn.r.Footprint(), cap(cn.out) + cap(cn.spare) // (the Reader's own goroutine changes its buffers)
	}
	checkFor(t, testTimeout, func() error {
		r1, s1 := footprint(n1, 2)
		r2, s2 := footprint(n2, 1)
		return unless(r2 <= wire.ReaderMinBuffer && s1 <= 2*idleBufferCap && r1 <= wire.ReaderMinBuffer && s2 <= 2*idleBufferCap,
			"buffers of the idle connection: node 1 reads %d, sends %d; node 2 reads %d, sends %d", r1, s1, r2, s2)
	})
}
