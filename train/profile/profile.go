// Package profile writes the CPU and allocation profiles of a training or benchmark run, as
// go tool pprof reads them (mqa's -cpuprofile and -memprofile flags, which its errors name).
package profile

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Start begins a CPU profile written to cpuPath (none when empty). The returned stop ends
// it and writes the allocation profile to memPath (none when empty); its error is the
// first write that failed.
func Start(cpuPath, memPath string) (stop func() error, err error) {
	var cpu *os.File
	if cpuPath != "" {
		if cpu, err = os.Create(cpuPath); err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		if err = pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("-cpuprofile %s: %w", cpuPath, err)
		}
	}
	return func() error {
		var first error
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				first = fmt.Errorf("-cpuprofile %s: %w", cpuPath, err)
			}
		}
		if memPath != "" {
			if err := writeHeap(memPath); err != nil && first == nil {
				first = err
			}
		}
		return first
	}, nil
}

// Around runs f between Start and stop; f's error comes first.
func Around(cpuPath, memPath string, f func() error) error {
	stop, err := Start(cpuPath, memPath)
	if err != nil {
		return err
	}
	err = f()
	if serr := stop(); err == nil {
		err = serr
	}
	return err
}

// writeHeap writes the allocation profile (all allocations since the start) to path.
func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("-memprofile %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("-memprofile %s: %w", path, err)
	}
	return nil
}
