//go:build mqacuda

package cuda

// NCCL, loaded at run time: mqa links no NCCL, so a cuda build runs on machines without it,
// and data-parallel training uses whichever libnccl.so.2 the machine has (PyTorch's pip
// wheels ship one in site-packages/nvidia/nccl/lib). The few prototypes mqa calls are
// declared here by hand, from NCCL's documented C API (no nccl.h is needed to build).

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <cuda.h>

typedef int mqaNcclResult;                            // ncclResult_t; 0 is ncclSuccess
typedef struct { char internal[128]; } mqaNcclUniqueId; // ncclUniqueId (NCCL_UNIQUE_ID_BYTES)
typedef void* mqaNcclComm;                            // ncclComm_t

enum { mqaNcclFloat32 = 7, mqaNcclSum = 0 };          // ncclFloat32, ncclSum

enum { fnGetVersion, fnGetUniqueId, fnCommInitRank, fnAllReduce, fnCommDestroy, fnCommAbort,
	fnGetErrorString, fnCommGetAsyncError, fnGroupStart, fnGroupEnd, fnCount };
static const char* mqa_nccl_names[fnCount] = { "ncclGetVersion", "ncclGetUniqueId", "ncclCommInitRank",
	"ncclAllReduce", "ncclCommDestroy", "ncclCommAbort", "ncclGetErrorString", "ncclCommGetAsyncError",
	"ncclGroupStart", "ncclGroupEnd" };
static void* mqa_nccl_fn[fnCount];

// mqa_nccl_open loads the library and its functions; it returns NULL or the name of what is
// missing (or dlerror's message).
static const char* mqa_nccl_open(const char* path) {
	void* h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (h == NULL) return dlerror();
	for (int i = 0; i < fnCount; i++) {
		mqa_nccl_fn[i] = dlsym(h, mqa_nccl_names[i]);
		if (mqa_nccl_fn[i] == NULL) return mqa_nccl_names[i];
	}
	return NULL;
}

static mqaNcclResult mqa_nccl_get_version(int* v) {
	return ((mqaNcclResult (*)(int*))mqa_nccl_fn[fnGetVersion])(v);
}
static mqaNcclResult mqa_nccl_get_unique_id(mqaNcclUniqueId* id) {
	return ((mqaNcclResult (*)(mqaNcclUniqueId*))mqa_nccl_fn[fnGetUniqueId])(id);
}
static mqaNcclResult mqa_nccl_comm_init_rank(mqaNcclComm* comm, int nranks, const mqaNcclUniqueId* id, int rank) {
	return ((mqaNcclResult (*)(mqaNcclComm*, int, mqaNcclUniqueId, int))mqa_nccl_fn[fnCommInitRank])(comm, nranks, *id, rank);
}
static mqaNcclResult mqa_nccl_all_reduce_sum(CUdeviceptr send, CUdeviceptr recv, size_t count, mqaNcclComm comm, CUstream s) {
	return ((mqaNcclResult (*)(const void*, void*, size_t, int, int, mqaNcclComm, CUstream))mqa_nccl_fn[fnAllReduce])(
		(const void*)send, (void*)recv, count, mqaNcclFloat32, mqaNcclSum, comm, s);
}
static mqaNcclResult mqa_nccl_comm_destroy(mqaNcclComm comm) {
	return ((mqaNcclResult (*)(mqaNcclComm))mqa_nccl_fn[fnCommDestroy])(comm);
}
static mqaNcclResult mqa_nccl_comm_abort(mqaNcclComm comm) {
	return ((mqaNcclResult (*)(mqaNcclComm))mqa_nccl_fn[fnCommAbort])(comm);
}
static const char* mqa_nccl_error_string(mqaNcclResult r) {
	return ((const char* (*)(mqaNcclResult))mqa_nccl_fn[fnGetErrorString])(r);
}
static mqaNcclResult mqa_nccl_comm_async_error(mqaNcclComm comm, mqaNcclResult* err) {
	return ((mqaNcclResult (*)(mqaNcclComm, mqaNcclResult*))mqa_nccl_fn[fnCommGetAsyncError])(comm, err);
}
static mqaNcclResult mqa_nccl_group_start(void) { return ((mqaNcclResult (*)(void))mqa_nccl_fn[fnGroupStart])(); }
static mqaNcclResult mqa_nccl_group_end(void) { return ((mqaNcclResult (*)(void))mqa_nccl_fn[fnGroupEnd])(); }
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"
)

// NCCLLibEnv names the environment variable that gives the path of libnccl.so.2.
const NCCLLibEnv = "MQA_NCCL_LIB"

// ncclSearch are the places tried, in order, when NCCLLibEnv is not set: the dynamic
// loader's own search (LD_LIBRARY_PATH, ldconfig's cache), then the NCCL of PyTorch's pip
// wheels in the usual Python environments. A glob under env is tried only where env is set.
var ncclSearch = []struct{ env, glob string }{
	{"", "libnccl.so.2"},
	{"VIRTUAL_ENV", "lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2"},
	{"CONDA_PREFIX", "lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2"},
	{"CONDA_PREFIX", "lib/libnccl.so.2"},
	{"HOME", ".local/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2"},
	{"", "/usr/local/lib/python3*/dist-packages/nvidia/nccl/lib/libnccl.so.2"},
	{"", "/usr/local/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2"},
	{"", "/usr/lib/python3/dist-packages/nvidia/nccl/lib/libnccl.so.2"},
	{"", "/opt/conda/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2"},
}

// NCCL is the loaded NCCL library.
type NCCL struct {
	Path    string // the file loaded
	Version int    // NCCL's version code (major·10000 + minor·100 + patch since 2.9)
}

var (
	ncclOnce   sync.Once
	ncclLoaded *NCCL
	ncclErr    error
)

// LoadNCCL loads NCCL once per process: from $MQA_NCCL_LIB when it is set, otherwise from the
// first of ncclSearch that loads. It turns NVLink multicast (NVLS) off unless NCCL_NVLS_ENABLE
// is already set, as the GPU machines mqa runs on require.
func LoadNCCL() (*NCCL, error) {
	ncclOnce.Do(func() { ncclLoaded, ncclErr = loadNCCL() })
	return ncclLoaded, ncclErr
}

func loadNCCL() (*NCCL, error) {
	if _, set := os.LookupEnv("NCCL_NVLS_ENABLE"); !set {
		if err := os.Setenv("NCCL_NVLS_ENABLE", "0"); err != nil {
			return nil, fmt.Errorf("nccl: setting NCCL_NVLS_ENABLE: %w", err)
		}
	}
	candidates := ncclCandidates()
	var tried []string
	for _, path := range candidates {
		cpath := C.CString(path)
		msg := C.mqa_nccl_open(cpath)
		C.free(unsafe.Pointer(cpath))
		if msg != nil {
			tried = append(tried, fmt.Sprintf("%s (%s)", path, C.GoString(msg)))
			continue
		}
		n := &NCCL{Path: path}
		var v C.int
		if err := ncclCheck("ncclGetVersion", C.mqa_nccl_get_version(&v)); err != nil {
			return nil, err
		}
		n.Version = int(v)
		return n, nil
	}
	return nil, fmt.Errorf("nccl: no usable libnccl.so.2; set %s to its path (PyTorch ships one: python3 -c 'import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], \"lib\", \"libnccl.so.2\"))'); tried: %s",
		NCCLLibEnv, strings.Join(tried, "; "))
}

// ncclCandidates lists the files to try: $MQA_NCCL_LIB alone when set, otherwise
// ncclSearch's names and the files its globs match.
func ncclCandidates() []string {
	if p := os.Getenv(NCCLLibEnv); p != "" {
		return []string{p}
	}
	var out []string
	for _, s := range ncclSearch {
		pattern := s.glob
		switch {
		case s.env != "" && os.Getenv(s.env) == "":
			continue
		case s.env != "":
			pattern = filepath.Join(os.Getenv(s.env), s.glob)
		case !strings.Contains(pattern, "/"):
			out = append(out, pattern) // a bare name: the loader searches for it
			continue
		}
		matches, _ := filepath.Glob(pattern) // the patterns are well-formed
		out = append(out, matches...)
	}
	return out
}

// ncclCheck turns an NCCL result into an error naming the call.
func ncclCheck(what string, r C.mqaNcclResult) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("nccl: %s: %s (error %d)", what, C.GoString(C.mqa_nccl_error_string(r)), int(r))
}

// NCCLUniqueID is the rendezvous token of a communicator: one rank makes it and every rank
// joins with it (in one process it is shared in memory; across hosts it must be sent to
// every process, see the README's "Several hosts").
type NCCLUniqueID [128]byte

// UniqueID makes a new communicator's token.
func (n *NCCL) UniqueID() (NCCLUniqueID, error) {
	var id C.mqaNcclUniqueId
	var out NCCLUniqueID
	if err := ncclCheck("ncclGetUniqueId", C.mqa_nccl_get_unique_id(&id)); err != nil {
		return out, err
	}
	copy(out[:], C.GoBytes(unsafe.Pointer(&id.internal[0]), C.int(len(out))))
	return out, nil
}

// NCCLComm is one rank's member of an NCCL communicator.
type NCCLComm struct {
	comm        C.mqaNcclComm
	Rank, Ranks int
}

// InitRank joins rank (of ranks) to the communicator of id. Every rank must call it at the
// same time, each from the OS thread whose current CUDA context is its GPU's primary context;
// it returns when all have joined.
func (n *NCCL) InitRank(id NCCLUniqueID, ranks, rank int) (*NCCLComm, error) {
	if rank < 0 || rank >= ranks {
		return nil, fmt.Errorf("nccl: rank %d of %d", rank, ranks)
	}
	var cid C.mqaNcclUniqueId
	for i, b := range id {
		cid.internal[i] = C.char(b)
	}
	c := &NCCLComm{Rank: rank, Ranks: ranks}
	if err := ncclCheck(fmt.Sprintf("ncclCommInitRank (rank %d of %d)", rank, ranks), C.mqa_nccl_comm_init_rank(&c.comm, C.int(ranks), &cid, C.int(rank))); err != nil {
		return nil, err
	}
	return c, nil
}

// allReduceSum enqueues on stream the sum over ranks of count float32 values at send into
// recv (which may be send: in place). Every rank must enqueue the same all-reduces in the
// same order.
func (c *NCCLComm) allReduceSum(send, recv dptr, count int, stream C.CUstream) error {
	return ncclCheck("ncclAllReduce", C.mqa_nccl_all_reduce_sum(C.CUdeviceptr(send), C.CUdeviceptr(recv), C.size_t(count), c.comm, stream))
}

// allReduceGroup enqueues on stream, as one NCCL group, the in-place sum over ranks of each
// buffer bufs[i] of counts[i] float32 values (a bucket of gradients).
func (c *NCCLComm) allReduceGroup(bufs []dptr, counts []int, stream C.CUstream) error {
	if err := ncclCheck("ncclGroupStart", C.mqa_nccl_group_start()); err != nil {
		return err
	}
	for i, b := range bufs {
		if err := c.allReduceSum(b, b, counts[i], stream); err != nil {
			_ = C.mqa_nccl_group_end() // the error to report is the all-reduce's
			return err
		}
	}
	return ncclCheck("ncclGroupEnd", C.mqa_nccl_group_end())
}

// AsyncError reports an error NCCL met in the background (a peer gone, a network failure).
func (c *NCCLComm) AsyncError() error {
	var r C.mqaNcclResult
	if err := ncclCheck("ncclCommGetAsyncError", C.mqa_nccl_comm_async_error(c.comm, &r)); err != nil {
		return err
	}
	return ncclCheck("communicator", r)
}

// Abort tears the communicator down without waiting for pending operations (after a rank
// failed: the others would otherwise wait for it for ever).
func (c *NCCLComm) Abort() error {
	if c.comm == nil {
		return nil
	}
	err := ncclCheck("ncclCommAbort", C.mqa_nccl_comm_abort(c.comm))
	c.comm = nil
	return err
}

// Destroy frees the communicator once its operations are done.
func (c *NCCLComm) Destroy() error {
	if c.comm == nil {
		return nil
	}
	err := ncclCheck("ncclCommDestroy", C.mqa_nccl_comm_destroy(c.comm))
	c.comm = nil
	return err
}
