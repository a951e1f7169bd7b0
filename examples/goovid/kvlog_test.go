package main

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func replayed(t *testing.T, path string) (map[string]string, *kvLog, int, error) {
	t.Helper()
	got := map[string]string{}
	l, n, err := openKVLog(path, func(k, v string) { got[k] = v })
	if l != nil {
		t.Cleanup(func() { l.Close() })
	}
	return got, l, n, err
}

// A put cut short by a crash (a torn last line) is dropped at the next
// open, and the log goes on from the last whole record.
func TestKVLogTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kvs.log")
	_, l, _, err := replayed(t, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"a", "1"}, {"b", "line\nbreak"}, {"a", "2"}} {
		if err := l.Append(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	whole, _ := os.Stat(path)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"k":"c","v":"3`) // the crash
	f.Close()

	got, l, n, err := replayed(t, path)
	if want := map[string]string{"a": "2", "b": "line\nbreak"}; err != nil || n != 3 || !maps.Equal(got, want) {
		t.Fatalf("replay after a torn put: %v, %d puts, %v; want 3 puts, %v", err, n, got, want)
	}
	if st, _ := os.Stat(path); st.Size() != whole.Size() {
		t.Fatalf("the torn tail was not cut: %d bytes, want %d", st.Size(), whole.Size())
	}
	if err := l.Append("c", "33"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if got, _, n, err := replayed(t, path); err != nil || n != 4 || got["c"] != "33" {
		t.Fatalf("after appending past the cut: %v, %d puts, %v", err, n, got)
	}
}

// A bad record followed by good ones is corruption, not a torn tail: the
// log is refused, never silently shortened.
func TestKVLogCorruptionRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kvs.log")
	const content = "{\"k\":\"a\",\"v\":\"1\"}\nnot json\n{\"k\":\"b\",\"v\":\"2\"}\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := replayed(t, path)
	if err == nil || !strings.Contains(err.Error(), "corrupt record at offset 18") {
		t.Fatalf("open of a corrupt log: %v, want it refused naming offset 18", err)
	}
	if data, _ := os.ReadFile(path); string(data) != content {
		t.Fatalf("the corrupt log was changed: %q", data)
	}
}

// Boxes compare by address, not by spelling; the boxes, sorted, are the
// reign nodes 1, 2, ...
func TestConfigBoxes(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{
		"1": {"type": "dummy", "box": "127.0.0.1:7000"},
		"2": {"type": "dummy", "box": "[::ffff:127.0.0.1]:7000"},
		"3": {"type": "dummy", "box": "127.0.0.1:600"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Boxes) != 2 || cfg.Boxes[0].String() != "127.0.0.1:600" || cfg.Boxes[1].String() != "127.0.0.1:7000" {
		t.Fatalf("boxes %v, want [127.0.0.1:600 127.0.0.1:7000]", cfg.Boxes)
	}
	if n := len(cfg.AgentsOn(cfg.Boxes[1])); n != 2 {
		t.Fatalf("%d agents on 127.0.0.1:7000, want 2", n)
	}
	for _, bad := range []struct{ config, want string }{
		{`{"1": {"type": "dummy", "box": "127.0.0.1:7000"}, "1": {"type": "dummy", "box": "127.0.0.1:7001"}}`, "agent 1: defined twice"},
		{`{"1": {"type": "dummy", "box": "localhost:7000"}}`, `agent 1: box "localhost:7000": want IP:port`},
		{`{"1": {"type": "dummy", "box": "127.0.0.1:7000", "routes": {"5": {"1": 0}}}}`, "agent 1: route 5: destination 1: port 0 is the console's"},
		{`{"1": {"type": "dummy", "box": "127.0.0.1:7000", "color": "red"}}`, `agent 1: json: unknown field "color"`},
	} {
		if _, err := ParseConfig([]byte(bad.config)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want %q", bad.config, err, bad.want)
		}
	}
}
