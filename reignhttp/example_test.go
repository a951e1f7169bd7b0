package reignhttp_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/reignhttp"
)

// Mount the handler on a server of your own (here a test server; in a
// program, an http.Server on an address only operators reach). Prometheus
// scrapes /metrics; people read /snapshot.
func ExampleNewHandler() {
	node, _ := reign.NewNode(reign.Config{NodeID: 1})
	a, box := node.NewMailbox()
	defer box.Close()
	_ = node.Register("orders", a)
	_ = a.Send("order 1")

	h, err := reignhttp.NewHandler(node, reignhttp.Options{})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "reign_mailbox_queued_messages") ||
			strings.HasPrefix(line, "reign_name_queue_length") {
			fmt.Println(line)
		}
	}
	// Output:
	// reign_mailbox_queued_messages{node="1"} 1
	// reign_name_queue_length{name="orders",node="1"} 1
}
