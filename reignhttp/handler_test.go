package reignhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/reign-go/reign"
	"github.com/reign-go/reign/internal/certs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// serve starts an httptest.Server with n's handler, closed when t ends.
func serve(t testing.TB, n *reign.Node, opts Options) *httptest.Server {
	t.Helper()
	h, err := NewHandler(n, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Client().CloseIdleConnections()
		srv.Close()
	})
	return srv
}

// get fetches path from srv with a real HTTP client and returns the body,
// failing t unless the status is want.
func get(t testing.TB, srv *httptest.Server, path string, want int) []byte {
	t.Helper()
	req, err := http.NewRequest("GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d: %s", path, resp.Status, want, body)
	}
	return body
}

// metrics scrapes /metrics and parses it with Prometheus's text parser.
func metrics(t testing.TB, srv *httptest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(get(t, srv, "/metrics", 200))))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want, and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

func mustValue(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := value(fams, name, labels)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

func newNode(t testing.TB) *reign.Node {
	t.Helper()
	n, err := reign.NewNode(reign.Config{NodeID: 7})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSnapshotJSON(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, m := n.NewMailbox()
	defer m.Close()
	_, idle := n.NewMailbox()
	defer idle.Close()
	for i := range 3 {
		if err := a.Send(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Register("server", a); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, n, Options{})

	var s struct {
		Node         int
		MailboxCount int `json:"mailbox_count"`
		Queued       int
		Mailboxes    []struct {
			Address string
			Queued  int
			Names   []string
		}
		Names []struct {
			Name   string
			Claims []string
			Queued int
		}
	}
	if err := json.Unmarshal(get(t, srv, "/snapshot", 200), &s); err != nil {
		t.Fatal(err)
	}
	if s.Node != 7 || s.MailboxCount != 2 || s.Queued != 3 || len(s.Mailboxes) != 2 {
		t.Fatalf("snapshot: %+v", s)
	}
	if mb := s.Mailboxes[0]; mb.Address != a.String() || mb.Queued != 3 || !slices.Equal(mb.Names, []string{"server"}) {
		t.Errorf("longest queue first: %+v", mb)
	}
	if len(s.Names) != 1 || s.Names[0].Name != "server" || s.Names[0].Queued != 3 || !slices.Equal(s.Names[0].Claims, []string{a.String()}) {
		t.Errorf("names: %+v", s.Names)
	}

	// ?mailboxes=1 lists only the longest queue; the totals stay whole
	s.Mailboxes = nil
	if err := json.Unmarshal(get(t, srv, "/snapshot?mailboxes=1", 200), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Mailboxes) != 1 || s.Mailboxes[0].Address != a.String() || s.MailboxCount != 2 {
		t.Errorf("mailboxes=1: %+v", s)
	}
	get(t, srv, "/snapshot?mailboxes=x", 400)
	if body := get(t, srv, "/", 200); !strings.Contains(string(body), "/metrics") {
		t.Errorf("index: %s", body)
	}
	get(t, srv, "/nothing", 404)
}

type job struct{ ID int }

func TestPeekHTTP(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, m := n.NewMailbox()
	for _, v := range []any{job{1}, "text", &job{2}} {
		if err := a.Send(v); err != nil {
			t.Fatal(err)
		}
	}
	srv := serve(t, n, Options{})
	var p struct {
		Mailbox string
		Types   []string
	}
	q := "/peek?mailbox=" + url.QueryEscape(a.String())
	if err := json.Unmarshal(get(t, srv, q+"&max=2", 200), &p); err != nil {
		t.Fatal(err)
	}
	if p.Mailbox != a.String() || !slices.Equal(p.Types, []string{"reignhttp.job", "string"}) {
		t.Errorf("peek: %+v", p)
	}
	if m.Len() != 3 {
		t.Errorf("peek took messages: %d left", m.Len())
	}
	get(t, srv, "/peek?mailbox=nonsense", 400)
	get(t, srv, q+"&max=-1", 400)
	m.Close()
	get(t, srv, q, 404)
}

func TestMetricsLocal(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, m := n.NewMailbox()
	defer m.Close()
	b, mb := n.NewMailbox()
	defer mb.Close()
	if err := n.Register("worker", b); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, n, Options{})
	node := map[string]string{"node": "7"}

	fams := metrics(t, srv)
	if v := mustValue(t, fams, "reign_mailbox_queued_messages", node); v != 0 {
		t.Errorf("queued before any send: %v", v)
	}
	if v := mustValue(t, fams, "reign_mailboxes", node); v != 2 {
		t.Errorf("mailboxes: %v", v)
	}

	// queued messages show in the gauges, and under the registered name
	for range 4 {
		_ = a.Send("x")
	}
	_ = b.Send("y")
	if err := n.JoinGroup("pool", a); err != nil {
		t.Fatal(err)
	}
	if err := n.JoinGroup("pool", b); err != nil {
		t.Fatal(err)
	}
	fams = metrics(t, srv)
	for name, want := range map[string]float64{
		"reign_groups":                   1,
		"reign_group_members_local":      2,
		"reign_mailbox_queued_messages":  5,
		"reign_mailbox_queue_length_max": 4,
		"reign_names":                    1,
		"reign_name_conflicts":           0,
		"reign_peers_up":                 0,
		"reign_broadcast_skipped_total":  0,
	} {
		if v := mustValue(t, fams, name, node); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v := mustValue(t, fams, "reign_name_queue_length", map[string]string{"node": "7", "name": "worker"}); v != 1 {
		t.Errorf("queue of worker: %v", v)
	}
	if f := fams["reign_name_queue_length"]; len(f.GetMetric()) != 1 {
		t.Errorf("one name queue series per local name, got %d", len(f.GetMetric()))
	}
	if f := fams["reign_messages_dropped_total"]; f.GetType() != dto.MetricType_COUNTER || len(f.GetMetric()) != len(dropReasons) {
		t.Errorf("dropped: %v", f)
	}
	mb.Close()
	fams = metrics(t, srv)
	if _, ok := value(fams, "reign_name_queue_length", map[string]string{"name": "worker"}); ok {
		t.Error("a closed mailbox's name still has a queue series")
	}
}

// Two nodes in one process: each handler has its own registry, and both
// collectors can also share one, told apart by their node label.
func TestTwoNodesOneProcess(t *testing.T) {
	t.Parallel()
	n1 := newNode(t)
	n2, err := reign.NewNode(reign.Config{NodeID: 8})
	if err != nil {
		t.Fatal(err)
	}
	_, m := n2.NewMailbox()
	defer m.Close()
	s1, s2 := serve(t, n1, Options{}), serve(t, n2, Options{})
	if v := mustValue(t, metrics(t, s1), "reign_mailboxes", nil); v != 0 {
		t.Errorf("node 7's handler: %v mailboxes", v)
	}
	if v := mustValue(t, metrics(t, s2), "reign_mailboxes", nil); v != 1 {
		t.Errorf("node 8's handler: %v mailboxes", v)
	}

	reg := prometheus.NewRegistry()
	if err := reg.Register(NewCollector(n1)); err != nil {
		t.Fatal(err)
	}
	shared := serve(t, n2, Options{Registry: reg})
	fams := metrics(t, shared)
	if len(fams["reign_mailboxes"].GetMetric()) != 2 || mustValue(t, fams, "reign_mailboxes", map[string]string{"node": "8"}) != 1 {
		t.Errorf("shared registry: %v", fams["reign_mailboxes"])
	}
	if _, err := NewHandler(n2, Options{Registry: reg}); err == nil {
		t.Error("registering node 8's collector twice in one registry succeeded")
	}
}

type note struct{ Text string }

// TestMetricsCluster runs two nodes over mutual TLS on 127.0.0.1: the
// peer gauges follow the connection, and a message sent to a closed
// mailbox of the other node moves that node's drop counter.
func TestMetricsCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := certs.WriteSet(dir, 2, certs.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	spec := &reign.ClusterSpec{
		NodeKeyPath:     filepath.Join(dir, "reign_node.%d.key"),
		NodeCertPath:    filepath.Join(dir, "reign_node.%d.crt"),
		ClusterCertPath: filepath.Join(dir, certs.CACertFile),
	}
	lns := map[reign.NodeID]net.Listener{}
	for id := reign.NodeID(1); id <= 2; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id] = ln
		spec.Nodes = append(spec.Nodes, reign.NodeSpec{ID: id, Address: ln.Addr().String()})
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := map[reign.NodeID]context.CancelFunc{}
	nodes := map[reign.NodeID]*reign.Node{}
	srvs := map[reign.NodeID]*httptest.Server{}
	for id := reign.NodeID(1); id <= 2; id++ {
		n, err := reign.NewNode(reign.Config{NodeID: id, Cluster: spec, Listener: lns[id],
			HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.RegisterType(note{}); err != nil {
			t.Fatal(err)
		}
		nodes[id] = n
		srvs[id] = serve(t, n, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stop[id] = cancel
		wg.Go(func() { _ = n.Serve(ctx) })
	}
	peerUp := func(id, peer reign.NodeID) float64 {
		v, _ := value(metrics(t, srvs[id]), "reign_peer_up", map[string]string{"peer": fmt.Sprint(peer)})
		return v
	}
	poll(t, func() error {
		if peerUp(1, 2) != 1 || peerUp(2, 1) != 1 {
			return fmt.Errorf("peers not up: 1->2 %v, 2->1 %v", peerUp(1, 2), peerUp(2, 1))
		}
		return nil
	})
	fams := metrics(t, srvs[2])
	if v := mustValue(t, fams, "reign_peers_up", nil); v != 1 {
		t.Errorf("node 2 peers_up %v", v)
	}
	if v := mustValue(t, fams, "reign_connections_total", nil); v < 1 {
		t.Errorf("node 2 connections_total %v", v)
	}
	closed := map[string]string{"reason": "closed"}
	before := mustValue(t, fams, "reign_messages_dropped_total", closed)

	// a registered name on node 2 is seen, remote, in node 1's snapshot
	b, mb := nodes[2].NewMailbox()
	if err := nodes[2].Register("inbox", b); err != nil {
		t.Fatal(err)
	}
	poll(t, func() error {
		if v, _ := value(metrics(t, srvs[1]), "reign_names", nil); v != 1 {
			return fmt.Errorf("node 1 knows %v names, want 1", v)
		}
		return nil
	})
	if _, ok := value(metrics(t, srvs[1]), "reign_name_queue_length", map[string]string{"name": "inbox"}); ok {
		t.Error("node 1 reports a queue for node 2's name")
	}

	// a message to node 2's closed mailbox is dropped there, and counted
	remote := nodes[1].BindAddress(b)
	mb.Close()
	if err := remote.Send(note{"late"}); err != nil {
		t.Fatal(err)
	}
	poll(t, func() error {
		if v := mustValue(t, metrics(t, srvs[2]), "reign_messages_dropped_total", closed); v != before+1 {
			return fmt.Errorf("node 2 dropped(closed) = %v, want %v", v, before+1)
		}
		return nil
	})

	// per-peer traffic and the round-trip time: node 1 sent node 2 one
	// message (the late note), and Pings go every 100 ms
	poll(t, func() error {
		fams := metrics(t, srvs[1])
		out := map[string]string{"peer": "2", "direction": "out"}
		if v, _ := value(fams, "reign_peer_messages_total", out); v != 1 {
			return fmt.Errorf("node 1 messages out to 2 = %v, want 1", v)
		}
		if v, _ := value(fams, "reign_peer_bytes_total", out); v < 10 {
			return fmt.Errorf("node 1 bytes out to 2 = %v", v)
		}
		if v, _ := value(fams, "reign_peer_rtt_seconds", map[string]string{"peer": "2"}); v <= 0 || v > 1 {
			return fmt.Errorf("node 1 rtt to 2 = %v", v)
		}
		if v, _ := value(fams, "reign_cert_not_after_timestamp_seconds", nil); v < float64(time.Now().Unix()) {
			return fmt.Errorf("cert not after = %v", v)
		}
		return nil
	})

	// node 2 stops: node 1's gauge says so, and counts the close by reason
	stop[2]()
	poll(t, func() error {
		if v := peerUp(1, 2); v != 0 {
			return fmt.Errorf("node 1 still has peer 2 up")
		}
		if v, _ := value(metrics(t, srvs[1]), "reign_connection_closes_total", map[string]string{"reason": "goodbye"}); v != 1 {
			return fmt.Errorf("node 1 closes(goodbye) = %v, want 1", v)
		}
		return nil
	})
}

// poll calls fn until it returns nil, failing t with fn's last error after
// 10 seconds.
func poll(t testing.TB, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
