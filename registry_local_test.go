package reign

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestRegistryLocal(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := newTestMailbox(t, n)
	b, _ := newTestMailbox(t, n)
	if got, ok := n.Lookup("svc"); ok || !got.IsZero() {
		t.Fatalf("Lookup of unknown name = %v, %v", got, ok)
	}
	if got := n.LookupAll("svc"); len(got) != 0 {
		t.Fatalf("LookupAll of unknown name = %v", got)
	}
	if err := n.Register("svc", a); err != nil {
		t.Fatal(err)
	}
	if err := n.Register("svc", a); err != nil {
		t.Fatalf("registering the same claim again: %v", err)
	}
	got, ok := n.Lookup("svc")
	if !ok || got != a {
		t.Fatalf("Lookup = %v, %v; want %v", got, ok, a)
	}
	mustSend(t, got, "via registry")
	if v := recv(t, m); v != "via registry" {
		t.Fatalf("got %v", v)
	}
	if all := n.LookupAll("svc"); !slices.Equal(all, []Address{a}) {
		t.Fatalf("LookupAll = %v", all)
	}
	// Registering again on the same node replaces the claim.
	if err := n.Register("svc", b); err != nil {
		t.Fatal(err)
	}
	if got, _ := n.Lookup("svc"); got != b {
		t.Fatalf("after re-register Lookup = %v, want %v", got, b)
	}
	if all := n.LookupAll("svc"); !slices.Equal(all, []Address{b}) {
		t.Fatalf("LookupAll = %v", all)
	}
	// Unregister by the mailbox that lost the name does nothing.
	n.Unregister("svc", a)
	if got, _ := n.Lookup("svc"); got != b {
		t.Fatalf("Unregister by a non-holder removed the claim: %v", got)
	}
	n.Unregister("svc", b)
	if _, ok := n.Lookup("svc"); ok {
		t.Fatal("Lookup after Unregister found the name")
	}
	n.Unregister("svc", b) // again: nothing
	n.Unregister("never", Address{})
	if m.Len() != 0 {
		t.Fatalf("a local claim got %d messages (MultipleClaim?)", m.Len())
	}
}

func TestRegistryCloseReleases(t *testing.T) {
	t.Parallel()
	n := newTestNode(t)
	a, m := n.NewMailbox()
	keep, _ := newTestMailbox(t, n)
	for _, name := range []string{"one", "two"} {
		if err := n.Register(name, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Register("kept", keep); err != nil {
		t.Fatal(err)
	}
	m.Close()
	for _, name := range []string{"one", "two"} {
		if got, ok := n.Lookup(name); ok {
			t.Fatalf("%s still registered to %v after Close", name, got)
		}
	}
	if got, ok := n.Lookup("kept"); !ok || got != keep {
		t.Fatal("closing one mailbox released another's name")
	}
	if len(n.reg.owned) != 1 {
		t.Fatalf("registry still tracks %d mailboxes", len(n.reg.owned))
	}
	// A new mailbox in the freed slot does not inherit the names.
	c, _ := newTestMailbox(t, n)
	if uint32(c.id) != uint32(a.id) {
		t.Fatal("slot not reused: the test needs it")
	}
	if _, ok := n.Lookup("one"); ok {
		t.Fatal("the slot's new mailbox inherited a name")
	}
}

func TestRegistryRefuses(t *testing.T) {
	t.Parallel()
	n, other := twoTestNodes(t)
	open, _ := newTestMailbox(t, n)
	closed, cm := n.NewMailbox()
	cm.Close()
	foreign, _ := newTestMailbox(t, other)
	otherID := newTestNodeConfig(t, Config{NodeID: 9})
	remote, _ := newTestMailbox(t, otherID)
	var unboundClosed Address
	bin, _ := closed.MarshalBinary()
	_ = unboundClosed.UnmarshalBinary(bin)
	cases := []struct {
		name string
		a    Address
		want error
	}{
		{"zero", Address{}, ErrZeroAddress},
		{"closed", closed, ErrMailboxClosed},
		{"unbound closed", unboundClosed, ErrMailboxClosed},
		{"other incarnation", n.BindAddress(foreign), ErrNotLocal},
		{"other incarnation, bound there", foreign, ErrNotLocal},
		{"other node", remote, ErrNotLocal},
		{"other node, bound here", n.BindAddress(remote), ErrNotLocal},
	}
	for _, c := range cases {
		if err := n.Register("x", c.a); !errors.Is(err, c.want) {
			t.Errorf("Register(%s) = %v, want %v", c.name, err, c.want)
		}
	}
	for _, name := range []string{"", strings.Repeat("n", MaxNameLen+1)} {
		if err := n.Register(name, open); !errors.Is(err, ErrBadName) {
			t.Errorf("Register(%d-byte name) = %v, want ErrBadName", len(name), err)
		}
	}
	if _, ok := n.Lookup("x"); ok {
		t.Fatal("a refused Register left a claim")
	}
	long := strings.Repeat("n", MaxNameLen)
	if err := n.Register(long, open); err != nil {
		t.Fatalf("Register(MaxNameLen-byte name) = %v", err)
	}
	// An unbound Address of an open local mailbox is bound and accepted.
	var unbound Address
	bin, _ = open.MarshalBinary()
	_ = unbound.UnmarshalBinary(bin)
	if err := n.Register("u", unbound); err != nil {
		t.Fatalf("Register(unbound Address of an open local mailbox) = %v", err)
	}
	if got, _ := n.Lookup("u"); got != open {
		t.Fatalf("Lookup = %v, want the bound %v", got, open)
	}
}
