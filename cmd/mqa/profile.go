package main

import (
	"flag"

	"mqa/train/profile"
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

// around runs f between start and stop (profile.Around).
func (p profiles) around(f func() error) error { return profile.Around(*p.cpu, *p.mem, f) }
