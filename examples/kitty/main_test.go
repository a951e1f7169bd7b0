package main

import (
	"strings"
	"testing"
	"time"

	"github.com/reign-go/reign/internal/proctest"
)

// The test binary is also the program: proctest runs it as separate OS
// processes.
func TestMain(m *testing.M) { proctest.Main(m, run) }

// The shop on node 1 and a customer on node 2, separate processes: the
// book's session, then a crash while the customer keeps ordering, then
// close_shop.
func TestServerAndClientProcesses(t *testing.T) {
	spec := proctest.WriteSpec(t, 2)
	srv := proctest.Start(t, "-config", spec, "server", "1")
	cl := proctest.Start(t, "-config", spec, "client", "2")
	if err := cl.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("client: %v\nclient output:\n%s\nserver output:\n%s", err, cl.Output(), srv.Output())
	}
	// close_shop stopped the shop for good: the server's output says so
	// before it is interrupted
	srv.WaitFor(t, 10*time.Second, `"Garfield" was set free.`)
	srv.Stop()
	if err := srv.Wait(t, 10*time.Second); err != nil {
		t.Fatalf("server: %v\n%s", err, srv.Output())
	}
	t.Logf("client:\n%s\nserver:\n%s", cl.Output(), srv.Output())
	proctest.InOrder(t, "the client's output", cl.Output(),
		"client: the shop is <1.",
		`client: order_cat("Cat Stevens") -> {Name:Cat Stevens Color:white Description:not actually a cat}`,
		`client: return_cat("Cat Stevens")`,
		`client: order_cat("Kitten Mittens") -> {Name:Cat Stevens Color:white Description:not actually a cat}`,
		`client: order_cat("Kitten Mittens") -> {Name:Kitten Mittens Color:black Description:look at them little paws!}`,
		`client: return_cat("Cat Stevens")`,
		"client: the shop went down: abnormal: ",
		`client: the shop is back after `,
		`its stock lost: a new cat, "Garfield"`,
		"client: close_shop() -> ok, <nil>",
	)
	proctest.InOrder(t, "the server's output", srv.Output(),
		"server: node 1 serving the shop",
		`supervisor: app: Failed service 'kitty'`,
		`reign: unhandled message: server "kitty" has no handler for cast string`,
		`shop: "Garfield" was set free.`,
		"server: stopped",
	)
	if strings.Count(srv.Output(), "Failed service") != 1 {
		t.Fatalf("the shop was restarted after close_shop:\n%s", srv.Output())
	}
}
