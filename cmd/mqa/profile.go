package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// profiles holds the -cpuprofile and -memprofile flags of a long-running command.
type profiles struct{ cpu, mem *string }

// profileFlags adds -cpuprofile and -memprofile to a command's flags.
func profileFlags(fs *flag.FlagSet) profiles {
	return profiles{
		cpu: fs.String("cpuprofile", "", "write a CPU profile (go tool pprof) to this file"),
		mem: fs.String("memprofile", "", "write an allocation profile (go tool pprof -sample_index=alloc_space) to this file at the end"),
	}
}

// start begins the CPU profile; the returned stop ends it and writes the memory profile.
// stop's error is the first write that failed.
func (p profiles) start() (stop func() error, err error) {
	var cpu *os.File
	if *p.cpu != "" {
		if cpu, err = os.Create(*p.cpu); err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		if err = pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("-cpuprofile %s: %w", *p.cpu, err)
		}
	}
	return func() error {
		var first error
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				first = fmt.Errorf("-cpuprofile %s: %w", *p.cpu, err)
			}
		}
		if *p.mem != "" {
			if err := writeHeapProfile(*p.mem); err != nil && first == nil {
				first = err
			}
		}
		return first
	}, nil
}

// around runs f between start and stop; its error comes first.
func (p profiles) around(f func() error) error {
	stop, err := p.start()
	if err != nil {
		return err
	}
	err = f()
	if serr := stop(); err == nil {
		err = serr
	}
	return err
}

func writeHeapProfile(path string) error {
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
