//go:build mqacuda

package cuda

import "testing"

// Every kind that computes a value has a lowering, and only those; every lowering launches.
func TestLoweringsCoverKinds(t *testing.T) {
	for k := range kindSpecs {
		kind := Kind(k)
		l, ok := lowerings[kind]
		if ok != isComputed(kind) {
			t.Errorf("%v: lowering %v, computes a value %v", kind, ok, isComputed(kind))
		}
		if ok && l.launch == nil {
			t.Errorf("%v: lowering without a launch", kind)
		}
	}
}
