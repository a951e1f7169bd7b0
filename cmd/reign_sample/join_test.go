package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestJoinFlag: -join reaches the node's membership configuration (a bad
// address is refused by NewNode, naming the field), and the usage shows
// how to grow a running cluster.
func TestJoinFlag(t *testing.T) {
	t.Parallel()
	spec := mintCluster(t, 1)
	var out, errOut bytes.Buffer
	if code := run([]string{"-config", spec, "-join", "no-port-here", "1"}, strings.NewReader(""), &out, &errOut); code != 1 {
		t.Fatalf("-join with a bad address: exit code %d, want 1; stderr:\n%s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "Config.Membership.Join") {
		t.Errorf("-join with a bad address: the error does not name the field:\n%s", errOut.String())
	}
	errOut.Reset()
	run([]string{"-h"}, strings.NewReader(""), &out, &errOut)
	for _, want := range []string{"-join", "-membership", "reign_init -add-node 5"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}
