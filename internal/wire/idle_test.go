package wire

import (
	"errors"
	"testing"
)

func TestIdleRoundTrip(t *testing.T) {
	for _, v := range []Idle{{IdleAsk, 0, 0}, {IdleAgree, 1 << 40, 7}, {IdleRefuse, 3, 1<<64 - 1}} {
		b := AppendIdle(nil, v)
		if len(b) != IdleSize {
			t.Fatalf("%+v: %d bytes, want %d", v, len(b), IdleSize)
		}
		got, err := ParseIdle(b)
		if err != nil || got != v {
			t.Fatalf("%+v: got %+v, %v", v, got, err)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, IdleSize-1), make([]byte, IdleSize+1), append([]byte{3}, make([]byte, 16)...)} {
		if _, err := ParseIdle(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseIdle(% x) = %v, want ErrMalformed", bad, err)
		}
	}
}
