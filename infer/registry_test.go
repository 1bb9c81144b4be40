package infer

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"mqa/layers"
	"mqa/models"
)

func TestNewBackendCPU(t *testing.T) {
	params := randomParams(t, smallLM, 1)
	for _, noCache := range []bool{false, true} {
		b, err := NewBackend("cpu", smallLM, params, BackendOptions{NoCache: noCache, Cache: "bf16"})
		if err != nil {
			t.Fatal(err)
		}
		cpu, ok := b.(*CPU)
		if !ok || cpu.NoCache != noCache || cpu.Params != params {
			t.Fatalf("NoCache %v: got %T %+v", noCache, b, b)
		}
	}
	_, err := NewBackend("tpu", smallLM, params, BackendOptions{})
	if err == nil || !strings.Contains(err.Error(), `"tpu"`) || !strings.Contains(err.Error(), "cpu") {
		t.Fatalf("unknown device: %v", err)
	}
}

func TestRegisterBackend(t *testing.T) {
	errFake := errors.New("fake backend")
	var got BackendOptions
	RegisterBackend("test-registry", func(cfg models.Config, params *layers.Params, opt BackendOptions) (Backend, error) {
		got = opt
		return nil, errFake
	})
	if devs := Backends(); !slices.IsSorted(devs) || !slices.Contains(devs, "cpu") || !slices.Contains(devs, "test-registry") {
		t.Fatalf("Backends() = %v", devs)
	}
	want := BackendOptions{Cache: "bf16"}
	if _, err := NewBackend("test-registry", smallLM, nil, want); !errors.Is(err, errFake) || got != want {
		t.Fatalf("NewBackend: err %v, options %+v, want %+v", err, got, want)
	}
	for _, c := range []struct {
		name    string
		factory BackendFactory
	}{
		{"test-registry", func(models.Config, *layers.Params, BackendOptions) (Backend, error) { return nil, nil }},
		{"cpu", func(models.Config, *layers.Params, BackendOptions) (Backend, error) { return nil, nil }},
		{"test-nil", nil},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), c.name) {
					t.Errorf("RegisterBackend(%q): panic %v, want one naming the device", c.name, r)
				}
			}()
			RegisterBackend(c.name, c.factory)
		}()
	}
}
