package main

import (
	"flag"
	"fmt"
	"os"

	"mqa/cuda"
)

// gpuMemoryFlag registers -gpu-memory on fs. The function it returns, called after parsing,
// checks the value and hands it to the GPU executors and decoders (through cuda.MemoryEnv).
func gpuMemoryFlag(fs *flag.FlagSet) func() error {
	v := fs.String("gpu-memory", "", "GPU memory budget: bytes with a unit (20GiB, 512MiB) or a fraction of the card (0.8); default: what the card has free")
	return func() error {
		if *v == "" {
			return nil
		}
		if _, _, err := cuda.ParseMemoryBudget(*v); err != nil {
			return fmt.Errorf("%s: -gpu-memory: %v: %w", fs.Name(), err, errUsage)
		}
		return os.Setenv(cuda.MemoryEnv, *v)
	}
}
