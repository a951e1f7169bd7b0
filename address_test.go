package reign

import (
	"errors"
	"fmt"
	"testing"
)

func TestAddressComparableMapKey(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	seen := map[Address]int{}
	var addrs []Address
	for i := range 5 {
		a, _ := newTestMailbox(t, n)
		addrs = append(addrs, a)
		seen[a] = i
	}
	if len(seen) != 5 {
		t.Fatalf("5 mailboxes gave %d distinct map keys", len(seen))
	}
	for i, a := range addrs {
		copied := a
		if seen[copied] != i {
			t.Fatalf("map lookup of %v = %d, want %d", a, seen[copied], i)
		}
	}
	_, m := newTestMailbox(t, n)
	if m.Address() != m.Address() {
		t.Fatal("two calls of Address() differ")
	}
}

func TestAddressString(t *testing.T) {
	t.Parallel()
	n := newTestNodeConfig(t, Config{NodeID: 7})
	var a Address
	for range 3 { // slot 2
		a, _ = newTestMailbox(t, n)
	}
	want := fmt.Sprintf("<7.2.1.%d>", n.inc)
	if got := a.String(); got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	if got := (Address{}).String(); got != "<0.0.0.0>" {
		t.Fatalf("zero String = %q", got)
	}
	// A reused slot shows its next generation.
	_, m := n.NewMailbox()
	slot := uint32(m.id)
	m.Close()
	b, _ := newTestMailbox(t, n)
	if want := fmt.Sprintf("<7.%d.2.%d>", slot, n.inc); b.String() != want {
		t.Fatalf("reused slot: String = %q, want %q", b.String(), want)
	}
	if a.NodeID() != 7 || n.ID() != 7 {
		t.Fatalf("NodeID = %d, ID = %d", a.NodeID(), n.ID())
	}
}

func TestAddressIsZero(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	if !(Address{}).IsZero() {
		t.Fatal("zero Address is not IsZero")
	}
	a, _ := newTestMailbox(t, n) // node 0, slot 0: only the incarnation and generation differ from zero
	if a.IsZero() {
		t.Fatalf("%v of node 0, slot 0 is IsZero", a)
	}
	if n.BindAddress(Address{}) != (Address{}) {
		t.Fatal("BindAddress of the zero Address is not zero")
	}
}

func TestAddressEncodingsRoundTrip(t *testing.T) {
	t.Parallel()
	n := newTestNodeConfig(t, Config{NodeID: 65535})
	var addrs []Address
	for range 3 {
		a, _ := newTestMailbox(t, n)
		addrs = append(addrs, a)
	}
	addrs = append(addrs, Address{n: n, node: 65535, inc: ^uint32(0), id: ^uint64(0)})
	for _, a := range addrs {
		bin, err := a.MarshalBinary()
		if err != nil || len(bin) != addressLen {
			t.Fatalf("MarshalBinary(%v) = %x, %v", a, bin, err)
		}
		var b Address
		if err := b.UnmarshalBinary(bin); err != nil {
			t.Fatalf("UnmarshalBinary(%x): %v", bin, err)
		}
		if b.n != nil {
			t.Fatal("UnmarshalBinary returned a bound Address")
		}
		if n.BindAddress(b) != a {
			t.Fatalf("binary round trip: %v became %v", a, b)
		}

		text, err := a.MarshalText()
		if err != nil || string(text) != a.String() {
			t.Fatalf("MarshalText(%v) = %q, %v", a, text, err)
		}
		var c Address
		if err := c.UnmarshalText(text); err != nil {
			t.Fatalf("UnmarshalText(%q): %v", text, err)
		}
		if n.BindAddress(c) != a {
			t.Fatalf("text round trip: %v became %v", a, c)
		}
	}

	var zero Address
	bin, _ := zero.MarshalBinary()
	var z Address
	if err := z.UnmarshalBinary(bin); err != nil || !z.IsZero() {
		t.Fatalf("zero binary round trip: %v, %v", z, err)
	}
	text, _ := zero.MarshalText()
	if len(text) != 0 {
		t.Fatalf("zero MarshalText = %q, want empty", text)
	}
	z = addrs[0]
	if err := z.UnmarshalText(text); err != nil || !z.IsZero() {
		t.Fatalf("zero text round trip: %v, %v", z, err)
	}
	z = addrs[0]
	if err := z.UnmarshalText([]byte("<0.0.0.0>")); err != nil || !z.IsZero() {
		t.Fatalf("UnmarshalText(<0.0.0.0>) = %v, %v", z, err)
	}
}

func TestAddressMalformed(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	good, _ := newTestMailbox(t, n)
	goodBin, _ := good.MarshalBinary()
	bins := map[string][]byte{
		"empty":     {},
		"short":     goodBin[:addressLen-1],
		"long":      append(append([]byte{}, goodBin...), 0),
		"id zero":   {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		"inc only":  {0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0},
		"node only": {0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	for name, b := range bins {
		a := good
		err := a.UnmarshalBinary(b)
		if !errors.Is(err, ErrBadAddress) {
			t.Errorf("UnmarshalBinary(%s %x) = %v, want ErrBadAddress", name, b, err)
		}
		if !a.IsZero() && a != good { // unchanged or zero, never half-decoded
			t.Errorf("UnmarshalBinary(%s) failed but left %v", name, a)
		}
	}
	texts := []string{
		"x", "<>", "<1.2.3>", "<1.2.3.4.5>", "1.2.3.4", "<1.2.3.4", "1.2.3.4>",
		"<a.b.c.d>", "<1.2.0.4>", "<65536.1.1.1>", "<1.4294967296.1.1>",
		"<1.1.4294967296.1>", "<1.1.1.4294967296>", "<-1.1.1.1>", "<1..1.1>",
		"< 1.1.1.1>", "<1.1.1.1> ",
	}
	for _, s := range texts {
		a := good
		err := a.UnmarshalText([]byte(s))
		if !errors.Is(err, ErrBadAddress) {
			t.Errorf("UnmarshalText(%q) = %v, want ErrBadAddress", s, err)
		}
		if !a.IsZero() {
			t.Errorf("UnmarshalText(%q) failed but left %v", s, a)
		}
	}
}

func TestZeroAndUnboundAddressSend(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	if err := (Address{}).Send(1); !errors.Is(err, ErrZeroAddress) {
		t.Fatalf("zero Send = %v, want ErrZeroAddress", err)
	}
	text, _ := a.MarshalText()
	var u Address
	if err := u.UnmarshalText(text); err != nil {
		t.Fatal(err)
	}
	if u == a {
		t.Fatal("unbound Address equals the bound one")
	}
	if err := u.Send(1); !errors.Is(err, ErrUnboundAddress) {
		t.Fatalf("unbound Send = %v, want ErrUnboundAddress", err)
	}
	if m.Len() != 0 {
		t.Fatal("an unbound Send arrived")
	}
	b := n.BindAddress(u)
	if b != a {
		t.Fatalf("BindAddress = %v, want %v", b, a)
	}
	mustSend(t, b, "via bound")
	if v := recv(t, m); v != "via bound" {
		t.Fatalf("Receive = %v", v)
	}
}

// TestClosedSlotReuse checks that the Address of a closed mailbox never
// reaches the mailbox that takes its slot next.
func TestClosedSlotReuse(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	old, m1 := n.NewMailbox()
	m1.Close()
	fresh, m2 := newTestMailbox(t, n)
	if uint32(old.id) != uint32(fresh.id) {
		t.Fatalf("slot not reused (%v, %v): the test needs it", old, fresh)
	}
	if old == fresh {
		t.Fatal("old and new Address are equal")
	}
	if err := old.Send("stale"); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("Send to the closed mailbox's Address = %v", err)
	}
	if m2.Len() != 0 {
		t.Fatal("the stale Send reached the new mailbox")
	}
	// Through its encodings too.
	bin, _ := old.MarshalBinary()
	var dec Address
	if err := dec.UnmarshalBinary(bin); err != nil {
		t.Fatal(err)
	}
	if err := n.BindAddress(dec).Send("stale"); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("Send to decoded stale Address = %v", err)
	}
	if m2.Len() != 0 {
		t.Fatal("the stale Send reached the new mailbox")
	}
	mustSend(t, fresh, "ok")
	if m2.Len() != 1 {
		t.Fatal("new mailbox did not get its own message")
	}
}

// TestOtherIncarnation: an Address from another run of a node (same node
// ID, other incarnation) behaves as closed, even when a mailbox with the
// same slot and generation is open on this run.
func TestOtherIncarnation(t *testing.T) {
	t.Parallel()
	n1, n2 := twoTestNodes(t)
	a1, m1 := newTestMailbox(t, n1)
	a2, m2 := newTestMailbox(t, n2)
	if a1.id != a2.id || a1.node != a2.node {
		t.Fatalf("%v and %v: the test needs the same node and mailbox IDs", a1, a2)
	}
	foreign := n1.BindAddress(a2) // n2's mailbox, seen by n1: an older run
	if foreign == a1 {
		t.Fatal("addresses of two incarnations are equal")
	}
	if err := foreign.Send("x"); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("Send to other incarnation = %v, want ErrMailboxClosed", err)
	}
	if m1.Len() != 0 || m2.Len() != 0 {
		t.Fatalf("message arrived: Len %d, %d", m1.Len(), m2.Len())
	}
	forged := Address{n: n1, node: n1.id, inc: n1.inc + 1, id: a1.id}
	if err := forged.Send("x"); !errors.Is(err, ErrMailboxClosed) {
		t.Fatalf("Send to forged incarnation = %v", err)
	}
	if m1.Len() != 0 {
		t.Fatal("forged-incarnation Send arrived")
	}
	// A link to it reports noproc at once.
	w, wm := newTestMailbox(t, n1)
	foreign.OnCloseNotify(w)
	mc, ok := recv(t, wm).(MailboxClosed)
	if !ok || mc.Address != foreign || mc.Reason != NoProc {
		t.Fatalf("OnCloseNotify(other incarnation) delivered %+v", mc)
	}
}
