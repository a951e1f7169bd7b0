package main

import (
	"testing"
	"time"

	"github.com/reign-go/reign/internal/proctest"
)

// The test binary is also the program: proctest runs it as separate OS
// processes.
func TestMain(m *testing.M) { proctest.Main(m, run) }

// The server on node 1 and the client on node 2, separate processes: the
// client allocates every channel, frees one and gets it back, then crashes
// the server with one alloc too many and keeps calling until ch_sup has
// restarted it.
func TestServerAndClientProcesses(t *testing.T) {
	spec := proctest.WriteSpec(t, 2)
	srv := proctest.Start(t, "-config", spec, "server", "1")
	cl := proctest.Start(t, "-config", spec, "client", "2")
	if err := cl.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("client: %v\nclient output:\n%s\nserver output:\n%s", err, cl.Output(), srv.Output())
	}
	srv.Stop()
	if err := srv.Wait(t, 10*time.Second); err != nil {
		t.Fatalf("server: %v\n%s", err, srv.Output())
	}
	t.Logf("client:\n%s\nserver:\n%s", cl.Output(), srv.Output())
	proctest.InOrder(t, "the client's output", cl.Output(),
		"client: ch3 is <1.",
		"client: alloc x100 -> 1..100",
		"client: free(42)",
		"client: alloc -> 42, <nil>",
		"client: alloc -> error: reign: mailbox closed: server <1.",
		"client: ch3 crashed under the call",
		"client: alloc -> 1, after ",
	)
	proctest.InOrder(t, "the server's output", srv.Output(),
		"server: node 1 serving ch_sup",
		`supervisor: ch_sup: Failed service 'ch3' (1.000000 failures of 1.000000), restarting: true, error: reign: server "ch3" panicked: runtime error: index out of range [0] with length 0`,
		"server: stopped",
	)
}
