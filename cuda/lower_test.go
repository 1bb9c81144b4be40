//go:build mqacuda

package cuda

import (
	"testing"

	"mqa/layers/ops"
)

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

// Every activation of layers/ops has a kernel code, each its own.
func TestActivationCodes(t *testing.T) {
	seen := map[int32]string{}
	for _, kind := range ops.Activations() {
		code, ok := activationCodes[kind]
		if !ok {
			t.Errorf("activation %q has no kernel code", kind)
			continue
		}
		if other, dup := seen[code]; dup {
			t.Errorf("activations %q and %q share code %d", other, kind, code)
		}
		seen[code] = kind
	}
}
