package models

import (
	"fmt"
	"strconv"
	"strings"
)

// FormatShapes writes batch shapes as "BxSxT" (batch × source length × target length; the
// source length is 0 for an LM), comma-separated.
func FormatShapes(shapes []Shape) string {
	parts := make([]string, len(shapes))
	for i, s := range shapes {
		parts[i] = fmt.Sprintf("%dx%dx%d", s.Batch, s.SrcLen, s.TgtLen)
	}
	return strings.Join(parts, ",")
}

// ParseShapes reads comma-separated BxSxT shapes (batch × source length × target length),
// each number at least 1 and the lengths at most maxLen. An error names the bad part.
func ParseShapes(list string, maxLen int) ([]Shape, error) {
	var out []Shape
	for _, part := range strings.Split(list, ",") {
		f := strings.Split(strings.TrimSpace(part), "x")
		var n [3]int
		ok := len(f) == 3
		for i := 0; ok && i < 3; i++ {
			v, err := strconv.Atoi(f[i])
			n[i], ok = v, err == nil && v >= 1
		}
		if !ok {
			return nil, fmt.Errorf("%q is not BxSxT (batch × source length × target length, positive integers)", part)
		}
		if n[1] > maxLen || n[2] > maxLen {
			return nil, fmt.Errorf("%q is longer than the preset's max_len %d", part, maxLen)
		}
		out = append(out, Shape{Batch: n[0], SrcLen: n[1], TgtLen: n[2]})
	}
	return out, nil
}
