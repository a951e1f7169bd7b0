package wire

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus under testdata/fuzz")

// errClass reduces an error to what the fuzz targets compare.
func errClass(err error) string {
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, ErrMalformed, ErrFrameTooLarge} {
		if err == e || errors.Is(err, e) {
			return e.Error()
		}
	}
	return fmt.Sprintf("other: %v", err)
}

// parseFrame runs the parser a receiver would for the frame's type.
func parseFrame(t Type, p []byte) error {
	var err error
	switch t {
	case TypeHello:
		_, err = ParseHello(p)
	case TypeHeartbeat, TypeRegSyncDone, TypeGroupSync:
		err = ParseEmpty(p)
	case TypeTypeDef:
		_, err = ParseTypeDef(p)
	case TypeMessage:
		_, err = ParseMessage(p)
	case TypeLink, TypeUnlink:
		_, err = ParseLink(p)
	case TypeClosed:
		_, err = ParseClosed(p)
	case TypeRequest:
		_, err = ParseRequest(p)
	case TypeReply:
		_, err = ParseReply(p)
	case TypeRegClaim, TypeRegRelease:
		_, err = ParseClaim(p)
	case TypeGoodbye:
		_, err = ParseGoodbye(p)
	case TypeCallFailed:
		_, err = ParseCallFailed(p)
	case TypeGroupJoin, TypeGroupLeave:
		_, err = ParseGroup(p)
	case TypeLinkFor:
		_, err = ParseLinkFor(p)
	case TypePing, TypePong:
		_, err = ParsePing(p)
	default:
		err = CheckType(t)
	}
	return err
}

// FuzzReader feeds arbitrary bytes through Next until an error, with every
// kind of split delivery and two buffer sizes. All must agree, and the frames
// returned must re-encode to the bytes consumed.
func FuzzReader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 4})
	f.Add(encodeFrames(testFrames()[:4]))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, maxFrame := range []int{64, 1 << 16} {
			var ref []frame
			var refErr string
			for i, d := range deliveries {
				for j, size := range []int{16, 4096} {
					got, err := readAll(newReaderSize(d.wrap(bytes.NewReader(data)), maxFrame, size))
					for _, fr := range got {
						parseFrame(fr.t, fr.p) // must not panic
					}
					if i == 0 && j == 0 {
						ref, refErr = got, errClass(err)
						enc := encodeFrames(got)
						if !bytes.HasPrefix(data, enc) {
							t.Fatalf("frames re-encode to %x, not a prefix of the input", enc)
						}
						if err == io.EOF && len(enc) != len(data) {
							t.Fatalf("io.EOF after %d of %d bytes", len(enc), len(data))
						}
						continue
					}
					if errClass(err) != refErr {
						t.Fatalf("%s/%d: error %v, whole delivery gave %s", d.name, size, err, refErr)
					}
					sameFrames(t, got, ref)
				}
			}
		}
		ReadHello(NewReader(bytes.NewReader(data), 1<<16)) // must not panic
	})
}

// FuzzPayloads runs every payload parser on arbitrary bytes: none may panic,
// and whatever parses must re-encode to the same bytes.
func FuzzPayloads(f *testing.F) {
	for _, s := range samples() {
		f.Add(s.enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, k := range kinds {
			enc, v, err := k.rt(data)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadMagic) {
					t.Fatalf("%s: error %v wraps no sentinel", name, err)
				}
				continue
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("%s: %x parsed as %+v re-encodes to %x", name, data, v, enc)
			}
			if h, ok := v.(Hello); ok {
				Agree(h, h)
				Negotiate(hello(MinVersion, MaxVersion), h)
			}
		}
	})
}

// corpus returns the seed corpus files: valid frames and payloads built by
// the append functions.
func corpus() map[string][]byte {
	c := map[string][]byte{}
	c["FuzzReader/frames"] = encodeFrames(testFrames()[:4])
	for i, s := range samples() {
		t := map[string]Type{"Hello": TypeHello, "TypeDef": TypeTypeDef, "Message": TypeMessage,
			"Link": TypeLink, "Closed": TypeClosed, "Request": TypeRequest, "Reply": TypeReply,
			"Claim": TypeRegClaim, "Goodbye": TypeGoodbye}[s.kind]
		if t == 0 {
			continue
		}
		name := fmt.Sprintf("%s-%d", s.kind, i)
		c["FuzzPayloads/"+name] = s.enc
		c["FuzzReader/"+name] = AppendFrame(AppendFrame(nil, t, s.enc), TypeHeartbeat, nil)
	}
	c["FuzzReader/split-large"] = AppendFrame(nil, TypeMessage, bytes.Repeat([]byte{1, 2, 3}, 40))
	c["FuzzReader/zero-length"] = []byte{0, 0, 0, 1, 2, 0, 0, 0, 0, 4}
	return c
}

// TestSeedCorpus checks the committed seed corpus is current, and rewrites
// it with -update-corpus.
func TestSeedCorpus(t *testing.T) {
	t.Parallel()
	for name, data := range corpus() {
		path := filepath.Join("testdata", "fuzz", name)
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
		if *updateCorpus {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale (%v): run go test -run TestSeedCorpus -update-corpus", path, err)
		}
	}
}
