package main

import (
	"flag"
	"fmt"

	"mqa/train"
)

// ranksFlags registers -gpus (data-parallel training on several GPUs) and -ranks (the same on
// CPU ranks, to check it) on fs. The function it returns, called after parsing with the
// training device, checks them and returns the number of data-parallel ranks.
func ranksFlags(fs *flag.FlagSet) func(device string) (int, error) {
	gpus := fs.Int("gpus", 1, "GPUs to train on, data-parallel (with -device cuda); the global batch (-batch or -max-tokens, times -accum) is split among them")
	ranks := fs.Int("ranks", 1, "data-parallel ranks on the CPU (with -device cpu): runs the multi-GPU code path on CPU executors, to check it; no speed-up")
	return func(device string) (int, error) {
		cmd := fs.Name()
		switch {
		case *gpus < 1 || *ranks < 1:
			return 0, fmt.Errorf("%s: -gpus %d / -ranks %d: need at least 1: %w", cmd, *gpus, *ranks, errUsage)
		case *gpus > 1 && *ranks > 1:
			return 0, fmt.Errorf("%s: give -gpus (for -device cuda) or -ranks (for -device cpu), not both: %w", cmd, errUsage)
		case *gpus > 1 && device != "cuda":
			return 0, fmt.Errorf("%s: -gpus %d needs -device cuda (to run %d data-parallel ranks on the CPU, use -ranks %d): %w", cmd, *gpus, *gpus, *gpus, errUsage)
		case *ranks > 1 && device != "cpu":
			return 0, fmt.Errorf("%s: -ranks is for -device cpu; on GPUs use -gpus %d: %w", cmd, *ranks, errUsage)
		}
		n := max(*gpus, *ranks)
		if n > 1 && device == "cuda" {
			if err := train.CheckDevice(device); err != nil {
				return 0, fmt.Errorf("%s: -gpus %d: this mqa was built without GPU support; training on several GPUs needs the mqacuda build (scripts/gpu.sh build) and NCCL (libnccl.so.2, see MQA_NCCL_LIB in the README)", cmd, n)
			}
		}
		if err := train.CheckRanks(device, n); err != nil {
			return 0, fmt.Errorf("%s: %w", cmd, err)
		}
		return n, nil
	}
}
