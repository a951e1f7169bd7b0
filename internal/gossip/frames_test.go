package gossip

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora under testdata/fuzz")

// layouts pins each op's bytes as PROTOCOL.md ("Membership") gives them.
var layouts = []struct {
	name string
	f    StreamFrame
	hex  string
}{
	{"open", StreamFrame{Op: OpOpen, ID: 1}, "01 01"},
	{"open-300", StreamFrame{Op: OpOpen, ID: 300}, "01 ac02"},
	{"data", StreamFrame{Op: OpData, ID: 1, Data: []byte("hi")}, "02 01 6869"},
	{"data-acceptor", StreamFrame{Op: OpData, Acceptor: true, ID: 2, Data: []byte{0}}, "82 02 00"},
	{"close", StreamFrame{Op: OpClose, ID: 1, Reason: CloseNormal}, "03 01 00"},
	{"close-refused", StreamFrame{Op: OpClose, Acceptor: true, ID: 7, Reason: CloseRefused}, "83 07 01"},
	{"close-idle", StreamFrame{Op: OpClose, ID: 7, Reason: CloseIdle}, "03 07 02"},
	{"close-shutdown", StreamFrame{Op: OpClose, ID: 7, Reason: CloseShutdown}, "03 07 03"},
	{"window", StreamFrame{Op: OpWindow, Acceptor: true, ID: 1, Increment: 32768}, "84 01 808002"},
}

func TestFrameLayout(t *testing.T) {
	for _, l := range layouts {
		want, err := hex.DecodeString(strings.ReplaceAll(l.hex, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		got := AppendStreamFrame(nil, l.f)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encodes as % x, want % x", l.name, got, want)
		}
		f, err := ParseStreamFrame(want)
		if err != nil {
			t.Errorf("%s: %v", l.name, err)
			continue
		}
		if fmt.Sprint(f) != fmt.Sprint(l.f) {
			t.Errorf("%s: parses as %+v, want %+v", l.name, f, l.f)
		}
	}
}

func TestParseStreamFrameRejects(t *testing.T) {
	for name, h := range map[string]string{
		"empty":             "",
		"no-id":             "01",
		"id-zero":           "01 00",
		"id-padded":         "01 8100",
		"id-overflow":       "01 ffffffffffffffffff02",
		"open-acceptor":     "81 01",
		"open-trailing":     "01 01 00",
		"data-empty":        "02 01",
		"close-no-reason":   "03 01",
		"close-trailing":    "03 01 00 00",
		"window-zero":       "04 01 00",
		"window-over":       "04 01 818004",
		"window-padded":     "04 01 8100",
		"window-trailing":   "04 01 01 00",
		"op-zero":           "00 01",
		"op-unknown":        "05 01",
		"op-unknown-accept": "ff 01",
	} {
		b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseStreamFrame(b); !errors.Is(err, ErrMalformed) || !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestNodeName(t *testing.T) {
	for _, id := range []uint16{0, 1, 3, 65535} {
		got, ok := ParseNodeName(NodeName(id))
		if !ok || got != id {
			t.Errorf("ParseNodeName(NodeName(%d)) = %d, %v", id, got, ok)
		}
	}
	for _, bad := range []string{"", "reign-node-", "reign-node-01", "reign-node-65536", "reign-node--1", "node-1", "reign-node-1x"} {
		if _, ok := ParseNodeName(bad); ok {
			t.Errorf("ParseNodeName(%q) accepted", bad)
		}
	}
}

func TestWriteCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite testdata/fuzz")
	}
	write := func(target, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var session []byte
	for _, l := range layouts {
		b := AppendStreamFrame(nil, l.f)
		write("FuzzStreamFrame", l.name, b)
	}
	// A well-behaved exchange, then one of each violation, as sessions.
	for _, f := range []StreamFrame{
		{Op: OpOpen, ID: 1}, {Op: OpData, ID: 1, Data: []byte("push")},
		{Op: OpWindow, Acceptor: true, ID: 1, Increment: 4}, {Op: OpOpen, ID: 2},
		{Op: OpClose, ID: 1}, {Op: OpData, ID: 2, Data: []byte("x")}, {Op: OpClose, ID: 2, Reason: CloseIdle},
	} {
		session = appendSessionFrame(session, AppendStreamFrame(nil, f))
	}
	write("FuzzHandleStream", "session", session)
	write("FuzzHandleStream", "open-skips", appendSessionFrame(nil, AppendStreamFrame(nil, StreamFrame{Op: OpOpen, ID: 2})))
	opens := []byte{}
	for id := uint64(1); id <= 6; id++ {
		opens = appendSessionFrame(opens, AppendStreamFrame(nil, StreamFrame{Op: OpOpen, ID: id}))
	}
	write("FuzzHandleStream", "too-many", opens)
	meta, _ := AppendMeta(nil, Meta{ID: 3, Incarnation: 7, DataAddr: "127.0.0.1:7000"})
	write("FuzzMeta", "good", meta)
	write("FuzzMeta", "empty-addr", meta[:8])
}

// appendSessionFrame appends one frame of a FuzzHandleStream input: a
// 2-byte length, then the payload.
func appendSessionFrame(b, p []byte) []byte {
	return append(append(b, byte(len(p)>>8), byte(len(p))), p...)
}

// FuzzStreamFrame: whatever parses re-encodes to the same bytes (one
// encoding per frame), and nothing panics.
func FuzzStreamFrame(f *testing.F) {
	for _, l := range layouts {
		f.Add(AppendStreamFrame(nil, l.f))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseStreamFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if got := AppendStreamFrame(nil, fr); !bytes.Equal(got, b) {
			t.Fatalf("% x parses as %+v, which encodes as % x", b, fr, got)
		}
	})
}

// sinkConn is a Conn that records what the Transport sends, for the fuzz
// target: there is no peer to run there, only the Transport's inbound side.
type sinkConn struct {
	done chan struct{}
	sent int
}

func (c *sinkConn) Node() string          { return NodeName(2) }
func (c *sinkConn) RemoteAddr() net.Addr  { return memberAddr("127.0.0.1:2") }
func (c *sinkConn) Done() <-chan struct{} { return c.done }
func (c *sinkConn) SendPacket([]byte) error {
	c.sent++
	return nil
}
func (c *sinkConn) SendStream(p []byte) error {
	if _, err := ParseStreamFrame(p); err != nil {
		panic(fmt.Sprintf("the Transport sent a malformed frame % x: %v", p, err))
	}
	c.sent++
	return nil
}

type noDialer struct{}

func (noDialer) DialNode(context.Context, memberlist.Address) (Conn, error) {
	return nil, errors.New("no dialing in this test")
}

// FuzzHandleStream feeds a session of Stream frames (each a 2-byte length
// and a payload) from one peer to a Transport whose memberlist reads every
// stream it accepts. Whatever the peer sends, the Transport does not
// panic, sends only well-formed frames, keeps the peer within its bounds,
// and leaves nothing behind when the connection is lost.
func FuzzHandleStream(f *testing.F) {
	f.Add(appendSessionFrame(nil, AppendStreamFrame(nil, StreamFrame{Op: OpOpen, ID: 1})))
	f.Fuzz(func(t *testing.T, in []byte) {
		const maxStreams = 3
		tr, err := New(Config{Name: NodeName(1), Addr: "127.0.0.1:1", Dialer: noDialer{},
			MaxStreamsPerPeer: maxStreams, StreamBacklog: 2, StreamIdleTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		c := &sinkConn{done: make(chan struct{})}
		var accepted []net.Conn
		buf := make([]byte, 100)
		for len(in) >= 2 {
			n := int(in[0])<<8 | int(in[1])
			in = in[2:]
			if n > len(in) {
				break
			}
			p := in[:n]
			in = in[n:]
			err := tr.HandleStream(c, p)
			if err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("error not ErrProtocol: %v", err)
				}
				break
			}
			// memberlist takes streams and reads what is there.
			for len(tr.StreamCh()) > 0 {
				accepted = append(accepted, <-tr.StreamCh())
			}
			for _, s := range accepted {
				_ = s.SetReadDeadline(time.Now())
				_, _ = s.Read(buf)
			}
			if st := tr.Stats(); st.Streams > maxStreams {
				t.Fatalf("%d streams open, limit %d", st.Streams, maxStreams)
			}
		}
		close(c.done)
		tr.ConnLost(c)
		for _, s := range accepted {
			if _, err := s.Read(buf); err == nil {
				t.Fatal("read on a stream of a lost connection succeeded")
			}
			_ = s.Close()
		}
		if st := tr.Stats(); st.Streams != 0 {
			t.Fatalf("%d streams left after the connection was lost", st.Streams)
		}
		_ = tr.Shutdown()
	})
}
