package reign

import (
	"testing"
	"time"
)

// Traffic is counted per peer on both sides, and Pings measure the round
// trip: after messages one way, the sender's counters show them out and
// the receiver's in, with bytes and frames at least as many.
func TestPeerTrafficAndRTT(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, func(c *Config) {
		c.HeartbeatInterval = 50 * time.Millisecond
		c.HeartbeatTimeout = time.Second
	})
	tc.connected()
	b, mb := newTestMailbox(t, tc.node(2))
	remote := tc.node(1).BindAddress(b)
	const count = 100
	for i := range count {
		mustSend(t, remote, testMsg{Seq: i})
	}
	for range count {
		recv(t, mb)
	}
	out := tc.node(1).Stats().Peers[2].Traffic
	in := tc.node(2).Stats().Peers[1].Traffic
	if out.MessagesOut != count || in.MessagesIn != count {
		t.Errorf("messages: node 1 sent %d, node 2 received %d; want %d", out.MessagesOut, in.MessagesIn, count)
	}
	if out.FramesOut < count || out.BytesOut < count*10 || in.FramesIn < count || in.BytesIn < count*10 {
		t.Errorf("frames and bytes: out %+v, in %+v", out, in)
	}
	checkFor(t, testTimeout, func() error {
		rtt := tc.node(1).Stats().Peers[2].RTT
		return unless(rtt > 0 && rtt < time.Second, "round-trip time %v", rtt)
	})
	if s := tc.node(2).Snapshot(); len(s.Peers) != 1 || s.Peers[0].MessagesIn != count {
		t.Errorf("snapshot peers: %+v", s.Peers)
	}
}
