//go:build mqacuda

package cuda

import (
	"os"
	"strconv"
	"testing"
)

// TestNCCLAllReduce sums a 64 MiB buffer across the GPUs with NCCL, checks the sum on every
// GPU and logs the bus bandwidth. It needs at least 2 GPUs (MQA_TEST_GPUS picks how many)
// and libnccl.so.2 (MQA_NCCL_LIB, see LoadNCCL).
func TestNCCLAllReduce(t *testing.T) {
	gpus := 2
	if s := os.Getenv("MQA_TEST_GPUS"); s != "" {
		var err error
		if gpus, err = strconv.Atoi(s); err != nil {
			t.Fatalf("MQA_TEST_GPUS=%q: %v", s, err)
		}
	}
	if _, err := LoadNCCL(); err != nil {
		t.Skip(err)
	}
	if visible := deviceCount(); visible < gpus {
		t.Skipf("%d GPUs visible, the test needs %d", visible, gpus)
	}
	res, err := CheckAllReduce(gpus, 16<<20, 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d GPUs, %d float32: %.3f ms per all-reduce, bus bandwidth %.1f GB/s", res.NCCL, res.GPUs, res.Values, res.Seconds*1e3, res.BusGBps)
}
