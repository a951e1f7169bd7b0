package reign

import (
	"sync"
	"testing"
	"time"
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
