package models

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseShapes(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    []Shape
		wantErr string
	}{
		{"32x64x48", []Shape{{32, 64, 48}}, ""},
		{"2x5x4, 3x7x6", []Shape{{2, 5, 4}, {3, 7, 6}}, ""},
		{"2x5", nil, `"2x5" is not BxSxT`},
		{"2x5x4,0x5x4", nil, `"0x5x4" is not BxSxT`},
		{"2xax4", nil, `"2xax4" is not BxSxT`},
		{"2x5x129", nil, `"2x5x129" is longer than the preset's max_len 128`},
	} {
		got, err := ParseShapes(c.in, 128)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseShapes(%q) error %v, want %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseShapes(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestFormatShapes(t *testing.T) {
	shapes := []Shape{{Batch: 2, SrcLen: 5, TgtLen: 4}, {Batch: 8, TgtLen: 64}}
	if got, want := FormatShapes(shapes), "2x5x4,8x0x64"; got != want {
		t.Errorf("FormatShapes = %q, want %q", got, want)
	}
	back, err := ParseShapes(FormatShapes(shapes[:1]), 10)
	if err != nil || !reflect.DeepEqual(back, shapes[:1]) {
		t.Errorf("ParseShapes(FormatShapes(%v)) = %v, %v", shapes[:1], back, err)
	}
}
