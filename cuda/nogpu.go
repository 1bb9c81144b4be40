//go:build !mqacuda

package cuda

import "io"

// RunDecodeBench is the GPU decode benchmark, which this build (without -tags mqacuda) does
// not have: it returns ErrNoGPUBuild.
func RunDecodeBench(DecodeBenchSpec, io.Writer) (*DecodeBenchResult, error) {
	return nil, ErrNoGPUBuild
}
