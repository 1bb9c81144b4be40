package train

import "testing"

func TestGiB(t *testing.T) {
	for _, c := range []struct {
		b    int64
		want string
	}{{0, "0.00 GiB"}, {3 << 29, "1.50 GiB"}, {80 << 30, "80.00 GiB"}} {
		if got := GiB(c.b); got != c.want {
			t.Errorf("GiB(%d) = %q, want %q", c.b, got, c.want)
		}
	}
}
