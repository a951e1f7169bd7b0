package reign

import "testing"

// BenchmarkCallTable measures what the call table adds to each remote
// Call: drawing a random reference, recording the call, and taking it
// back when the reply comes.
func BenchmarkCallTable(b *testing.B) {
	n := newTestNode(b)
	var t callTable
	oc := outCall{peer: 2, owned: true, caller: Address{n: n, node: n.id, inc: n.inc, id: 1}}
	b.ReportAllocs()
	for b.Loop() {
		r, err := t.add(oc)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := t.take(r, 2, &oc.replyTo); !ok {
			b.Fatal("not taken")
		}
	}
}
