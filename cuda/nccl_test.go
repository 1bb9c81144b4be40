//go:build mqacuda

package cuda

import "testing"

// TestNCCLAllReduce sums a 64 MiB buffer across the GPUs with NCCL, checks the sum on every
// GPU and logs the bus bandwidth. It needs at least 2 GPUs (MQA_TEST_GPUS picks how many)
// and libnccl.so.2 (MQA_NCCL_LIB, see LoadNCCL).
func TestNCCLAllReduce(t *testing.T) {
	gpus := testGPUs(t)
	res, err := CheckAllReduce(gpus, 16<<20, 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d GPUs, %d float32: %.3f ms per all-reduce, bus bandwidth %.1f GB/s", res.NCCL, res.GPUs, res.Values, res.Seconds*1e3, res.BusGBps)
}
