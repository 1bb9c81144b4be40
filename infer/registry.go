package infer

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"mqa/layers"
	"mqa/models"
)

// BackendOptions are what a command chooses of a decoding backend.
type BackendOptions struct {
	// NoCache recomputes the whole sequence at every step (the CPU reference); a backend
	// that always caches refuses it.
	NoCache bool
	// Cache is the element type of the K/V cache where a backend has a choice ("fp32",
	// "bf16"); empty: the backend's default. The CPU caches in float32 whatever it says.
	Cache string
}

// BackendFactory makes the decoding backend of a model.
type BackendFactory func(cfg models.Config, params *layers.Params, opt BackendOptions) (Backend, error)

// backends are the registered decoding backends by device name. The CPU is built in; a
// build with the mqacuda tag registers "cuda" (package cuda's init).
var (
	backendsMu sync.RWMutex
	backends   = map[string]BackendFactory{
		"cpu": func(cfg models.Config, params *layers.Params, opt BackendOptions) (Backend, error) {
			return NewCPU(cfg, params, opt.NoCache)
		},
	}
)

// RegisterBackend makes a decoding backend available on device. Like database/sql.Register
// it panics when factory is nil or the device is already registered: both are mistakes in
// the program, not in its input.
func RegisterBackend(device string, factory BackendFactory) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	if factory == nil {
		panic("infer: RegisterBackend of a nil factory for device " + device)
	}
	if _, dup := backends[device]; dup {
		panic("infer: RegisterBackend called twice for device " + device)
	}
	backends[device] = factory
}

// Backends lists the devices this build can decode on, sorted.
func Backends() []string {
	backendsMu.RLock()
	defer backendsMu.RUnlock()
	return slices.Sorted(maps.Keys(backends))
}

// CloseBackend frees what a decoding backend holds on a device (the GPU decoder's memory and
// context); a CPU backend holds nothing to free.
func CloseBackend(b Backend) {
	if c, ok := b.(io.Closer); ok {
		_ = c.Close() // the caller is done with b; there is nothing to undo if freeing fails
	}
}

// NewBackend makes the decoding backend of a model on device.
func NewBackend(device string, cfg models.Config, params *layers.Params, opt BackendOptions) (Backend, error) {
	backendsMu.RLock()
	factory, ok := backends[device]
	backendsMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("infer: no decoding backend for device %q (this build has: %v)", device, Backends())
	}
	return factory(cfg, params, opt)
}
