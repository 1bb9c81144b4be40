//go:build mqacuda

package cuda

import (
	"slices"
	"testing"

	"mqa/infer"
	"mqa/layers/ops"
	"mqa/train"
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

// The mqacuda build registers the GPU as a training executor and as a decoding backend (the
// commands' -device cuda and compare's -decode-device cuda find them there).
func TestBackendsRegistered(t *testing.T) {
	if !slices.Contains(infer.Backends(), "cuda") {
		t.Errorf("infer backends %v: no cuda", infer.Backends())
	}
	if !slices.Contains(train.Executors(), "cuda") {
		t.Errorf("train executors %v: no cuda", train.Executors())
	}
}
