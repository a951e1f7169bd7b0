package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestTypeNumbersAreFixed(t *testing.T) {
	t.Parallel()
	// The numbers are protocol: this table must only ever grow.
	want := []struct {
		t    Type
		n    uint8
		name string
	}{
		{TypeHello, 1, "Hello"},
		{TypeHeartbeat, 2, "Heartbeat"},
		{TypeTypeDef, 3, "TypeDef"},
		{TypeMessage, 4, "Message"},
		{TypeLink, 5, "Link"},
		{TypeUnlink, 6, "Unlink"},
		{TypeClosed, 7, "Closed"},
		{TypeRequest, 8, "Request"},
		{TypeReply, 9, "Reply"},
		{TypeRegClaim, 10, "RegClaim"},
		{TypeRegRelease, 11, "RegRelease"},
		{TypeRegSyncDone, 12, "RegSyncDone"},
		{TypeGoodbye, 13, "Goodbye"},
		{TypeCallFailed, 14, "CallFailed"},
		{TypeGroupJoin, 15, "GroupJoin"},
		{TypeGroupLeave, 16, "GroupLeave"},
		{TypeGroupSync, 17, "GroupSync"},
		{TypeGossip, 18, "Gossip"},
		{TypeGossipStream, 19, "GossipStream"},
		{TypeLinkFor, 20, "LinkFor"},
		{TypePing, 21, "Ping"},
		{TypePong, 22, "Pong"},
		{TypeConnAccept, 23, "ConnAccept"},
		{TypeIdle, 24, "Idle"},
	}
	for _, w := range want {
		if uint8(w.t) != w.n || w.t.String() != w.name || !w.t.Known() || CheckType(w.t) != nil {
			t.Errorf("type %d: got number %d, name %q, known %v", w.n, uint8(w.t), w.t.String(), w.t.Known())
		}
	}
	if int(MaxType) != len(want) {
		t.Errorf("MaxType = %d, want %d", MaxType, len(want))
	}
	for _, u := range []Type{0, MaxType + 1, 200, 255} {
		if u.Known() {
			t.Errorf("%d is known", u)
		}
		if err := CheckType(u); !errors.Is(err, ErrUnknownFrame) {
			t.Errorf("CheckType(%d) = %v", u, err)
		}
	}
	if s := Type(0).String(); s != "Type(0)" {
		t.Errorf("Type(0).String() = %q", s)
	}
	if s := Type(255).String(); s != "Type(255)" {
		t.Errorf("Type(255).String() = %q", s)
	}
}

func TestAppendFrame(t *testing.T) {
	t.Parallel()
	got := AppendFrame([]byte("x"), TypeMessage, []byte("abc"))
	want := []byte{'x', 0, 0, 0, 4, 4, 'a', 'b', 'c'}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = %v, want %v", got, want)
	}
	got = AppendFrame(nil, TypeHeartbeat, nil)
	if want := []byte{0, 0, 0, 1, 2}; !bytes.Equal(got, want) {
		t.Fatalf("empty frame = %v, want %v", got, want)
	}
}

func TestBeginEndFrame(t *testing.T) {
	t.Parallel()
	b, start := BeginFrame([]byte("prefix"), TypeReply)
	if start != 6 || len(b) != 6+HeaderSize {
		t.Fatalf("BeginFrame: start %d, len %d", start, len(b))
	}
	b = append(b, "payload"...)
	b, err := EndFrame(b, start, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := AppendFrame([]byte("prefix"), TypeReply, []byte("payload")); !bytes.Equal(b, want) {
		t.Fatalf("got %v, want %v", b, want)
	}

	// Exactly at the limit is fine; one over is refused and the partial
	// frame is discarded.
	b, start = BeginFrame([]byte("keep"), TypeMessage)
	b = append(b, make([]byte, 9)...)
	if _, err := EndFrame(b, start, 10); err != nil {
		t.Fatalf("L == max: %v", err)
	}
	b = append(b, 0)
	b, err = EndFrame(b, start, 10)
	if !errors.Is(err, ErrFrameTooLarge) || string(b) != "keep" {
		t.Fatalf("L > max: %q, %v", b, err)
	}

	// maxFrame <= 0 means DefaultMaxFrame.
	b, start = BeginFrame(nil, TypeMessage)
	b = append(b, make([]byte, DefaultMaxFrame)...)
	if _, err := EndFrame(b, start, 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("default max: %v", err)
	}

	// Bad offsets are errors, not panics.
	for _, s := range []int{-1, 3, 100} {
		b := []byte{0, 0, 0, 0, 4, 1, 2}
		if _, err := EndFrame(b, s, 100); !errors.Is(err, ErrMalformed) {
			t.Errorf("EndFrame(start=%d) = %v", s, err)
		}
	}
}
