package reign

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

var errTestCause = errors.New("test: disk on fire")

func TestCloseWithErrorTellsWatchersTheCause(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	w, wm := newTestMailbox(t, n)
	for _, tc := range []struct {
		cause  error
		reason Reason
	}{{nil, Normal}, {errTestCause, Abnormal}, {fmt.Errorf("wrapped: %w", errTestCause), Abnormal}} {
		a, m := n.NewMailbox()
		a.OnCloseNotify(w)
		m.CloseWithError(tc.cause)
		m.CloseWithError(errors.New("second close: ignored"))
		mc := recv(t, wm).(MailboxClosed)
		if mc.Address != a || mc.Reason != tc.reason || mc.Err != tc.cause {
			t.Errorf("CloseWithError(%v): got %+v, want reason %v and Err %v", tc.cause, mc, tc.reason, tc.cause)
		}
		if tc.cause != nil && !errors.Is(mc.Err, errTestCause) {
			t.Errorf("errors.Is(%v, cause) = false", mc.Err)
		}
		if wm.Len() != 0 {
			t.Errorf("a second close notified again")
		}
	}
	if got := Abnormal.String(); got != "abnormal" {
		t.Errorf("Abnormal.String() = %q", got)
	}
}

func TestCallFailsWithTheServersCause(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	srv, sm := n.NewMailbox()
	errc := make(chan error, 1)
	go func() {
		_, err := Call(testCtx(t), srv, 1)
		errc <- err
	}()
	if _, ok := recv(t, sm).(Request); !ok {
		t.Fatal("server did not get a Request")
	}
	sm.CloseWithError(errTestCause)
	err := <-errc
	if !errors.Is(err, ErrMailboxClosed) || !errors.Is(err, errTestCause) {
		t.Fatalf("Call = %v, want an error wrapping ErrMailboxClosed and the cause", err)
	}
	if !strings.HasPrefix(err.Error(), "reign: ") || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Call error text %q lacks the prefix or the cause", err)
	}
}

func TestCallReturnsAnErrorReplyAsItsError(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	srv, _ := startServer(t, n, func(v any) {
		req := v.(Request)
		switch req.Body {
		case "fail":
			_ = req.Reply(fmt.Errorf("no luck: %w", errTestCause))
		default:
			_ = req.Reply(req.Body)
		}
	})
	v, err := Call(testCtx(t), srv, "fail")
	if v != nil || !errors.Is(err, errTestCause) {
		t.Fatalf("Call = %v, %v; want nil and an error wrapping the reply's", v, err)
	}
	if v, err := Call(testCtx(t), srv, "ok"); v != "ok" || err != nil {
		t.Fatalf("Call = %v, %v", v, err)
	}
}

// Across nodes, an error reply arrives as its text, and an abnormal close
// reaches remote watchers and pending Calls as Abnormal with an Err.
func TestRemoteErrorReplyAndAbnormalClose(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, nil)
	tc.connected()
	n1, n2 := tc.node(1), tc.node(2)
	srv, sm := n2.NewMailbox()
	rs := n1.BindAddress(srv)

	go func() {
		v, err := sm.Receive(context.Background())
		if err != nil {
			return
		}
		_ = v.(Request).Reply(fmt.Errorf("refused: %w", errTestCause))
	}()
	_, err := Call(testCtx(t), rs, 1)
	var re *RemoteError
	if !errors.As(err, &re) || re.Text != "refused: test: disk on fire" {
		t.Fatalf("remote error reply: Call = %v (%T), want a *RemoteError with the text", err, err)
	}

	w, wm := newTestMailbox(t, n1)
	rs.OnCloseNotify(w)
	errc := make(chan error, 1)
	go func() {
		_, err := Call(testCtx(t), rs, 2)
		errc <- err
	}()
	if _, ok := recv(t, sm).(Request); !ok {
		t.Fatal("server did not get the second Request")
	}
	sm.CloseWithError(errTestCause)
	mc := recv(t, wm).(MailboxClosed)
	if mc.Reason != Abnormal || !errors.As(mc.Err, &re) {
		t.Fatalf("remote watcher got %+v, want Abnormal with a *RemoteError", mc)
	}
	if err := <-errc; !errors.Is(err, ErrMailboxClosed) || !errors.As(err, &re) {
		t.Fatalf("pending remote Call = %v, want ErrMailboxClosed with a *RemoteError", err)
	}
}

func TestExitTextAndCause(t *testing.T) {
	t.Parallel()
	if exitText(nil) != "" || exitCause(Normal, "x") != nil || exitCause(NoConnection, "") != nil {
		t.Fatal("a normal exit has a text or a cause")
	}
	long := strings.Repeat("é", MaxExitText) // 2 bytes each
	s := exitText(errors.New(long))
	if len(s) > MaxExitText || !strings.HasPrefix(long, s) || len(s) < MaxExitText-1 {
		t.Fatalf("exitText cut %d bytes to %d", len(long), len(s))
	}
	var re *RemoteError
	if err := exitCause(Abnormal, "boom"); !errors.As(err, &re) || re.Text != "boom" {
		t.Fatalf("exitCause = %v", err)
	}
	if err := exitCause(Abnormal, ""); err == nil || err.Error() == "" {
		t.Fatal("an Abnormal exit without text has no cause")
	}
}

func TestRegisterTypeSeveral(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	type a struct{ X int }
	type b struct{ Y string }
	if err := n.RegisterType(a{}, b{}, &RemoteError{}); err != nil {
		t.Fatal(err)
	}
	if n.types.forType(reflect.TypeOf(a{})) == nil || n.types.forType(reflect.TypeOf(b{})) == nil {
		t.Fatal("not every type was registered")
	}
	err := n.RegisterType(nil, make(chan int))
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "nil value") || !strings.Contains(err.Error(), "chan int") {
		t.Fatalf("RegisterType(nil, chan) = %v, want both failures", err)
	}
}

// A MailboxClosed, with or without its Err, is reserved to the node that
// saw the close: it cannot be sent on to another node (a forwarded one
// would be indistinguishable from a forgery), whatever the codec.
func TestMailboxClosedWithErrStaysLocal(t *testing.T) {
	t.Parallel()
	for _, codec := range testCodecs {
		n1 := codecNode(t, 1, codec)
		a, _ := newTestMailbox(t, n1)
		for _, mc := range []MailboxClosed{{Address: a, Reason: Abnormal, Err: errTestCause}, {Address: a, Reason: Normal}} {
			if _, _, err := n1.encodeMessage(nil, mc); !errors.Is(err, ErrReservedType) {
				t.Errorf("%s: encoding %+v for another node: %v, want ErrReservedType", codec.Name(), mc, err)
			}
		}
	}
}
