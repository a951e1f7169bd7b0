package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// callFailedSamples are valid CallFailed payloads: the fuzz seeds.
var callFailedSamples = []CallFailed{
	{CallRef: 1, Node: 2, Part: CallPartRequest, Code: CallFailedUnknownType, Type: "main.Ask", Text: "reign: unknown message type"},
	{CallRef: 1<<64 - 1, Node: 65535, Part: CallPartReply, Code: 255},
	{CallRef: 7, Part: CallPartReply, Code: CallFailedUnencodable, Type: strings.Repeat("t", MaxCallFailedText), Text: strings.Repeat("é", MaxCallFailedText/2)},
}

func TestCallFailedLayout(t *testing.T) {
	t.Parallel()
	got := hex.EncodeToString(AppendCallFailed(nil, CallFailed{CallRef: 0x0102030405060708, Node: 3, Part: 1, Code: 4, Type: "T", Text: "xy"}))
	if want := "0102030405060708" + "0003" + "01" + "04" + "0154" + "027879"; got != want {
		t.Fatalf("CallFailed encodes as %s, want %s", got, want)
	}
	for _, f := range callFailedSamples {
		enc := AppendCallFailed(nil, f)
		back, err := ParseCallFailed(enc)
		if err != nil || back != f {
			t.Fatalf("%+v round-trips to %+v, %v", f, back, err)
		}
		for i := range enc {
			if _, err := ParseCallFailed(enc[:i]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("a %d-byte prefix of %x parsed: %v", i, enc, err)
			}
		}
		if _, err := ParseCallFailed(append(enc, 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("a trailing byte parsed: %v", err)
		}
	}
}

// Strings over the bound are cut by the sender and refused by the receiver.
func TestCallFailedBounds(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxCallFailedText+1)
	f, err := ParseCallFailed(AppendCallFailed(nil, CallFailed{Type: long, Text: long}))
	if err != nil || len(f.Type) != MaxCallFailedText || len(f.Text) != MaxCallFailedText {
		t.Fatalf("long strings: %d, %d, %v", len(f.Type), len(f.Text), err)
	}
	raw := AppendCallFailed(nil, CallFailed{})
	raw = append(raw[:len(raw)-2], appendString(nil, long)...)
	raw = append(raw, 0)
	if _, err := ParseCallFailed(raw); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a %d-byte Type parsed: %v", len(long), err)
	}
}

// The Closed frame's Text is appended only when set: a frame without it
// (as older nodes send) parses with Text "", and one with it round-trips;
// an empty or oversized Text field is malformed.
func TestClosedText(t *testing.T) {
	t.Parallel()
	c := Closed{Target: Ref{1, 2}, Watcher: Ref{3, 4}, Reason: ReasonAbnormal, Text: "boom: é"}
	enc := AppendClosed(nil, c)
	if got, want := hex.EncodeToString(enc), "00000001"+"0000000000000002"+"00000003"+"0000000000000004"+"04"+"08"+hex.EncodeToString([]byte("boom: é")); got != want {
		t.Fatalf("Closed with text encodes as %s, want %s", got, want)
	}
	if back, err := ParseClosed(enc); err != nil || back != c {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	old := AppendClosed(nil, Closed{Target: c.Target, Watcher: c.Watcher, Reason: ReasonAbnormal})
	if !bytes.Equal(old, enc[:25]) {
		t.Fatalf("a Closed without text is not the old 25-byte layout: %x", old)
	}
	if back, err := ParseClosed(old); err != nil || back.Text != "" || back.Reason != ReasonAbnormal {
		t.Fatalf("old layout: %+v, %v", back, err)
	}
	for name, bad := range map[string][]byte{
		"empty text": append(old[:25:25], 0),
		"too long":   append(old[:25:25], appendString(nil, strings.Repeat("x", MaxClosedText+1))...),
		"short text": append(old[:25:25], 5, 'a'),
	} {
		if _, err := ParseClosed(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseClosed(append(old[:25:25], appendString(nil, strings.Repeat("x", MaxClosedText))...)); err != nil {
		t.Errorf("a text of exactly MaxClosedText bytes: %v", err)
	}
}

// FuzzCallFailed checks that ParseCallFailed never panics, and that what it
// accepts re-encodes to the same bytes.
func FuzzCallFailed(f *testing.F) {
	for _, s := range callFailedSamples {
		f.Add(AppendCallFailed(nil, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseCallFailed(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if enc := AppendCallFailed(nil, v); !bytes.Equal(enc, data) {
			t.Fatalf("%x parsed as %+v re-encodes to %x", data, v, enc)
		}
	})
}
